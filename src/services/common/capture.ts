/**
 * Capture of what a service receives, for confidentiality audits: with `ZTV_CAPTURE_DIR` set, every
 * request body (as it arrived, after TLS) and every opened session operation (its plaintext, after
 * the session layer) is written to a file of that directory. Off by default; the federation's
 * confidentiality test turns it on for the cloud and scans the files for keys, pixels and identities.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';

export interface Capture {
  /** Tees every request body of `app` into the capture directory. */
  attach(app: FastifyInstance, label: string): void;
  /** Records an opened session operation's body. */
  operation(name: string, body: unknown): void;
}

export function captureTo(dir: string | undefined): Capture | undefined {
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let seq = 0;
  const file = (label: string, ext: string) =>
    join(dir, `${process.pid}-${String(++seq).padStart(6, '0')}-${label}.${ext}`);
  return {
    attach(app, label) {
      app.addHook('preParsing', async (_req, _reply, payload) => {
        const chunks: Buffer[] = [];
        const tee = new PassThrough();
        payload.on('data', (c: Buffer) => chunks.push(c));
        payload.on('end', () => writeFileSync(file(label, 'body'), Buffer.concat(chunks)));
        payload.pipe(tee);
        return tee;
      });
    },
    operation(name, body) {
      writeFileSync(file(`op-${name}`, 'json'), JSON.stringify(body));
    },
  };
}
