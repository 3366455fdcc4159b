// A real session (SessionServer and SessionClient, real ECDH, ECDSA and AES-GCM) between two ends in
// one process, and the cloud's side of a retrieval stream: a multipart/related body of instances cut
// into sealed frames, served as a fetch Response. For the tests of streams opened off the page's
// thread (src/core/session/stream.test.ts, src/viewer/pipeline/stream.test.ts).
import { buildMultipart } from '../src/core/multipart.ts';
import { generateSigningKeys } from '../src/core/pki/issue.ts';
import { signingKeyFromCryptoKeys } from '../src/core/crypto/keys.ts';
import { utf8 } from '../src/core/bytes.ts';
import {
  FRAME_DATA,
  FRAME_END,
  FRAME_ERROR,
  SessionClient,
  SessionServer,
  type Credentials,
  type PeerValidator,
  type Post,
  type Sealed,
} from '../src/core/session/protocol.ts';

async function party(
  name: string,
): Promise<{ credentials: Credentials; validator: PeerValidator }> {
  const keys = await generateSigningKeys(false);
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  return {
    credentials: {
      signer: await signingKeyFromCryptoKeys('ECDSA-P256', keys.privateKey, keys.publicKey),
      chain: [name],
    },
    // The chain is the party's name: certificates are the handshake tests' business, not this one's.
    validator: async (chain) =>
      chain[0] === name
        ? { ok: true, peer: { subject: name, thumbprint: name, spki, attributes: {} } }
        : { ok: false, reason: 'unknown' },
  };
}

export interface Pair {
  readonly server: SessionServer;
  readonly client: SessionClient;
  /** Refusals each side reported, as `side reason`. */
  readonly refusals: string[];
  /** The server's answer to a sealed stream request: what it carries, as sealed frames. */
  frames(
    sealed: Sealed,
    payload: Uint8Array,
    end?: 'end' | 'error' | 'none',
  ): Promise<Uint8Array[]>;
}

/** A connected session; `packet` is the negotiated frame size (the server's maximum). */
export async function sessionPair(packet = 4096): Promise<Pair> {
  const cloud = await party('cloud');
  const device = await party('device');
  const refusals: string[] = [];
  const server = new SessionServer({
    credentials: cloud.credentials,
    validateClient: device.validator,
    maxPacket: packet,
    onRefusal: (r) => void refusals.push(`server ${r}`),
  });
  const post: Post = async (path, body) => {
    if (path === '/session/connect') return server.connect(body as never);
    if (path === '/session/authenticate') return server.authenticate(body as never);
    if (path === '/session/finish') return server.finish(body as never);
    const m = await server.open(body as Sealed);
    const { path: op, body: b } = JSON.parse(new TextDecoder().decode(m.plaintext)) as {
      path: string;
      body: unknown;
    };
    return server.seal(m.sessionId, utf8(JSON.stringify({ status: 200, body: { op, echo: b } })));
  };
  const client = new SessionClient(post, {
    credentials: device.credentials,
    validateServer: cloud.validator,
    maxPacket: packet,
    onRefusal: (r) => void refusals.push(`client ${r}`),
  });
  await client.connect();
  return {
    server,
    client,
    refusals,
    async frames(sealed, payload, end = 'end') {
      const { sessionId } = await server.open(sealed);
      const out: Uint8Array[] = [];
      const size = server.packetSize(sessionId);
      for (let o = 0; o < payload.length; o += size)
        out.push(await server.sealFrame(sessionId, FRAME_DATA, payload.subarray(o, o + size)));
      if (end === 'end')
        out.push(await server.sealFrame(sessionId, FRAME_END, utf8('{"status":200}')));
      if (end === 'error')
        out.push(
          await server.sealFrame(
            sessionId,
            FRAME_ERROR,
            utf8('{"status":500,"error":"internal","message":"retrieve failed midway"}'),
          ),
        );
      return out;
    },
  };
}

/** The cloud's retrieval body: one part per instance, named by its Content-Location. */
export const retrievalBody = (instances: readonly { id: string; bytes: Uint8Array }[]) =>
  buildMultipart(
    instances.map((i) => ({
      headers: { 'Content-Location': `/instances/${i.id}` },
      body: i.bytes,
    })),
    'ztv-test-boundary',
  );

/** Bytes of a made-up instance: its index in every byte, `n` of them. */
export const instanceBytes = (i: number, n: number) => new Uint8Array(n).fill(i + 1);

/**
 * A fetch that answers `/session/stream` with the frames `answer` makes of the sealed request, cut
 * into 3000-byte chunks as a network would (frame boundaries anywhere); `alter` may change the
 * frames first. Any other URL is refused; an aborted signal aborts the body.
 */
export function streamFetch(
  answer: (sealed: Sealed) => Promise<Uint8Array[]>,
  alter?: (frames: Uint8Array[]) => Uint8Array[],
): typeof fetch & { readonly urls: string[] } {
  const urls: string[] = [];
  const f = async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    urls.push(url);
    if (!url.endsWith('/session/stream')) throw new TypeError('fetch failed');
    let frames = await answer(JSON.parse(String(init?.body)) as Sealed);
    if (alter) frames = alter(frames);
    const all = new Uint8Array(frames.reduce((n, b) => n + b.length, 0));
    let o = 0;
    for (const b of frames) {
      all.set(b, o);
      o += b.length;
    }
    const signal = init?.signal;
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (signal?.aborted) return c.error(signal.reason);
        if (at >= all.length) return c.close();
        c.enqueue(all.slice(at, at + 3000));
        at += 3000;
      },
    });
    return new Response(body, { status: 200 });
  };
  return Object.assign(f as typeof fetch, { urls });
}
