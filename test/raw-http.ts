/**
 * A request sent by hand on a real socket, for the limits' tests: the head and the first bytes of a
 * body declared longer, then the server's answer and whether it closed the connection — the rest of
 * the body is never sent, so a server that waits for it (or drains it) is seen doing so.
 */
import { connect, type Socket } from 'node:net';

export function sendPartial(
  port: number,
  path: string,
  declared: number,
  first: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  /** How to reach the server (a TLS connection, say); plain TCP by default. */
  open: (port: number) => Socket = (p) => connect(p, '127.0.0.1'),
  method = 'POST',
): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = open(port);
    let answer = '';
    // Generous: the server should answer at once, but the machine may be loaded.
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, 20_000);
    socket.on('data', (d) => {
      answer += d.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    const head = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(
      `${method} ${path} HTTP/1.1\r\nhost: localhost\r\n${head}content-length: ${declared}\r\n\r\n${first}`,
    );
  });
}
