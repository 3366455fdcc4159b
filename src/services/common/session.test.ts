// The ISCL-style session through Fastify (app.inject): a clinician's device and a service agree a
// version and packet size, authenticate each other with certified keys, exchange sealed messages and
// disconnect; every attack is refused with a clear reason, and every refusal is reported to the log
// of the side that made it (the server's onRefusal, or the client's).
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signingKeyFromCryptoKeys } from '../../core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import {
  createCrl,
  createCsr,
  generateEncryptionKeys,
  generateSigningKeys,
  issueDeviceFromCsr,
} from '../../core/pki/issue.ts';
import { OID } from '../../core/pki/oids.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import { signTrustGroup, verifyTrustGroup } from '../../core/pki/trust-group.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import { deviceValidator, organisationValidator } from '../../core/session/peers.ts';
import {
  RemoteError,
  SessionClient,
  SessionError,
  SessionServer,
  type Credentials,
  type Post,
  type Sealed,
} from '../../core/session/protocol.ts';
import { message, stream } from '../../core/operations/contract.ts';
import { SESSION_BODY_LIMITS, sessionPlugin } from './session.ts';

const echo = message<{ echo: string; clinician: string; packet: number }>()('echo', {
  type: 'object',
  required: ['text'],
  additionalProperties: false,
  properties: { text: { type: 'string', maxLength: 100 } },
});
const N_BYTES = {
  type: 'object',
  required: ['n'],
  additionalProperties: false,
  properties: { n: { type: 'integer', minimum: 0, maximum: 1_000_000 } },
} as const;
const bytes = stream('bytes', N_BYTES);
const emptyStream = async function* (): AsyncGenerator<Uint8Array> {};
const fails = stream('fails', N_BYTES);

let pki: DemoPki;
let view: PkiView;
let app: FastifyInstance;
let server: SessionServer;
let device: Credentials;
let clock = Date.now();
const refusals: string[] = [];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: { error?: string; message?: string },
  ) {
    super(`${status} ${body.error}: ${body.message}`);
  }
}

const post: Post = async (path, body) => {
  const r = await app.inject({ method: 'POST', url: path, payload: body as object });
  const json = r.json() as { error?: string; message?: string };
  if (r.statusCode >= 400) throw new HttpError(r.statusCode, json);
  return json;
};

const client = (
  over: Partial<ConstructorParameters<typeof SessionClient>[1]> = {},
  via: Post = post,
) =>
  new SessionClient(via, {
    credentials: device,
    validateServer: organisationValidator(() => view, ['cloud']),
    maxPacket: 65536,
    onRefusal: (r, m) => refusals.push(`client ${r}: ${m}`),
    ...over,
  });

async function enrolDevice(): Promise<Credentials> {
  const keys = await generateSigningKeys(false);
  const enc = await generateEncryptionKeys(false);
  const ca = pki.hospitalCas['consumer-ca'];
  const cert = await issueDeviceFromCsr(
    { cert: ca.cert, privateKey: ca.keys.privateKey },
    await createCsr(keys, enc.publicKey, 'browser'),
    { id: 'dr.bob', role: 'physician', domain: OID.domainConsumer },
    'Riverside',
  );
  return {
    signer: await signingKeyFromCryptoKeys('ECDSA-P256', keys.privateKey, keys.publicKey),
    chain: [cert.toString('pem'), ca.cert.toString('pem')],
  };
}

const pattern = (from: number, n: number) =>
  Uint8Array.from({ length: n }, (_, i) => ((from + i) * 7) & 0xff);

const injectStream = (mutate?: (b: Uint8Array) => void) => async (path: string, sealed: Sealed) => {
  const r = await app.inject({ method: 'POST', url: path, payload: sealed as object });
  const body = new Uint8Array(r.rawPayload);
  mutate?.(body);
  return [body.subarray(0, 5000), body.subarray(5000)]; // arrives in pieces, as over a network
};

const reason = async (p: Promise<unknown>): Promise<string> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (e instanceof HttpError) return e.body.error ?? '';
  if (e instanceof SessionError) return e.reason;
  if (e instanceof RemoteError) return e.code;
  throw e;
};

/**
 * Expects `run()` to be refused for `why`, and that refusal to be logged, with its reason and a sentence,
 * by the side that made it (the server's onRefusal, or the client's). Returns the log line.
 */
async function refused(
  run: () => Promise<unknown>,
  why: string,
  side: 'server' | 'client' = 'server',
): Promise<string> {
  const from = refusals.length;
  expect(await reason(run())).toBe(why);
  const line = refusals.slice(from).find((r) => r.startsWith(`${side} ${why}: `));
  expect(
    line,
    `the ${side} logged no "${why}" refusal: ${JSON.stringify(refusals.slice(from))}`,
  ).toMatch(/: \S.{10,}/);
  return line!;
}

beforeAll(async () => {
  pki = await createDemoPki();
  view = {
    root: pki.root.cert,
    intermediates: Object.values(pki.hospitalCas).map((c) => c.cert),
    organisations: [],
    crls: pki.crls,
    trustGroup: pki.trustGroup,
  };
  const cloud = pki.organisations.cloud;
  server = new SessionServer({
    credentials: {
      signer: await signingKeyFromCryptoKeys(
        'ECDSA-P256',
        cloud.keys.privateKey,
        cloud.keys.publicKey,
      ),
      chain: [cloud.cert.toString('pem')],
    },
    validateClient: deviceValidator(() => view),
    maxPacket: 32768,
    idleMs: 60_000,
    now: () => clock,
    onRefusal: (r, m) => void refusals.push(`server ${r}: ${m}`),
  });
  app = Fastify();
  await app.register(sessionPlugin, { server });
  app.sessionOperations.handle(echo, async (body, ctx) => ({
    echo: body.text,
    clinician: ctx.client.attributes.clinicianId ?? '',
    packet: ctx.packet,
  }));
  app.sessionOperations.stream(bytes, async (body) =>
    (async function* () {
      for (let o = 0; o < body.n; o += 10_000) yield pattern(o, Math.min(10_000, body.n - o));
    })(),
  );
  // Yields `n` bytes in 10 kB pieces, then fails (a blob that cannot be read, say).
  app.sessionOperations.stream(fails, async (body) =>
    (async function* () {
      for (let o = 0; o < body.n; o += 10_000) yield pattern(o, Math.min(10_000, body.n - o));
      throw new Error('the store went away');
    })(),
  );
  device = await enrolDevice();
});
afterAll(() => app?.close());

describe('session protocol', () => {
  it('connects, authenticates both ways, exchanges sealed messages and disconnects', async () => {
    const c = client();
    await c.connect();
    expect(c.packet).toBe(32768); // the smaller of 65536 (client) and 32768 (server)
    expect(c.server?.attributes.organisation).toBe('cloud');
    const r = await c.request<{ echo: string; clinician: string; packet: number }>('echo', {
      text: 'hello',
    });
    expect(r).toEqual({ echo: 'hello', clinician: 'dr.bob', packet: 32768 });
    // Schema-validated inside the session: answered 400 in the sealed reply (an operation's refusal,
    // not a session refusal: the session stays open).
    const before = refusals.length;
    expect(await reason(c.request('echo', { text: 42 }))).toBe('bad-request');
    expect(await reason(c.request('no-such-operation', {}))).toBe('unknown-operation');
    // …and both reach the server's refusal log with their reason.
    expect(refusals.slice(before)).toEqual([
      expect.stringMatching(/^server bad-request: echo: .*text must be string/),
      'server bad-request: no operation no-such-operation',
    ]);
    await c.close();
    expect(await refused(() => c.request('echo', { text: 'again' }), 'closed', 'client')).toMatch(
      /the session was closed/,
    );
  });

  it('refuses, at the server, a message on a closed session however it is sent', async () => {
    const c = client();
    await c.connect();
    const seal = (path: string, body: unknown) =>
      c.sealRequest(new TextEncoder().encode(JSON.stringify({ path, body })));
    // Sealed with the session's keys before the client knows it is closed: only the server can say no.
    const closing = await seal('/session/close', {});
    const after = await seal('echo', { text: 'after close' });
    expect(await post('/session/message', closing)).toMatchObject({ sessionId: c.id, seq: 0 });
    const line = await refused(() => post('/session/message', after), 'closed');
    expect(line).toBe('server closed: the session was closed');
    await refused(() => post('/session/message', closing), 'closed'); // the close itself, replayed
    await refused(() => post('/session/stream', after), 'closed'); // nor on the streaming route
  });

  it('seals bodies: what travels holds no plaintext', async () => {
    const seen: unknown[] = [];
    const spy: Post = async (path, body) => {
      seen.push(body);
      const reply = await post(path, body);
      seen.push(reply);
      return reply;
    };
    const c = client({}, spy);
    await c.connect();
    await c.request('echo', { text: 'secret-patient-42' });
    expect(JSON.stringify(seen)).not.toContain('secret-patient-42');
    expect(JSON.stringify(seen)).not.toContain('dr.bob"'); // the answer is sealed too
  });

  it('refuses a handshake or message body beyond its route limit (413), before reading it', async () => {
    // 64 kB to /session/connect: a handshake step is a kilobyte at the most.
    const big = await app.inject({
      method: 'POST',
      url: '/session/connect',
      payload: { versions: ['x'.repeat(64 * 1024)], maxPacket: 1 },
    });
    expect(big.statusCode).toBe(413);
    for (const [path, limit] of Object.entries({
      '/session/authenticate': SESSION_BODY_LIMITS.authenticate,
      '/session/finish': SESSION_BODY_LIMITS.finish,
      '/session/message': SESSION_BODY_LIMITS.sealed,
      '/session/stream': SESSION_BODY_LIMITS.sealed,
    })) {
      const r = await app.inject({
        method: 'POST',
        url: path,
        payload: { sessionId: '0'.repeat(32), seq: 0, data: 'A'.repeat(limit) },
      });
      expect(r.statusCode, path).toBe(413);
    }
  });

  it('refuses an unsupported version', async () => {
    expect(
      await refused(
        () => client({ versions: ['ISCL-DES-MD5/0'] }).connect(),
        'unsupported-version',
      ),
    ).toMatch(/ISCL-DES-MD5\/0 is supported/);
  });

  it('refuses a replayed challenge and a forged signature', async () => {
    let firstAuth: Record<string, unknown> | undefined;
    const recorder: Post = async (path, body) => {
      if (path === '/session/authenticate') firstAuth = body as Record<string, unknown>;
      return post(path, body);
    };
    await client({}, recorder).connect();
    const { sessionId } = (await post('/session/connect', {
      versions: ['ZTV-ISCL/1'],
      maxPacket: 4096,
    })) as { sessionId: string };
    await refused(
      () => post('/session/authenticate', { ...firstAuth, sessionId }),
      'replayed-challenge',
    );

    const forger: Post = async (path, body) => {
      if (path === '/session/finish')
        (body as { signature: string }).signature = Buffer.alloc(64, 1).toString('base64url');
      return post(path, body);
    };
    expect(await refused(() => client({}, forger).connect(), 'bad-signature')).toMatch(
      /client's signature over the handshake does not verify/,
    );
  });

  it("refuses a server whose handshake signature does not verify (the client's check)", async () => {
    // What a man in the middle can do with the cloud's certificate but not its key: forge the
    // signature, or replay the cloud's genuine signature from an earlier handshake.
    let earlier = '';
    await client({}, async (path, body) => {
      const r = await post(path, body);
      if (path === '/session/authenticate') earlier = (r as { signature: string }).signature;
      return r;
    }).connect();
    for (const forge of [
      () => Buffer.alloc(64, 7).toString('base64url'),
      () => earlier,
      () => 'not-a-signature',
    ]) {
      const paths: string[] = [];
      const mitm: Post = async (path, body) => {
        paths.push(path);
        const r = await post(path, body);
        return path === '/session/authenticate' ? { ...(r as object), signature: forge() } : r;
      };
      const c = client({}, mitm);
      expect(await refused(() => c.connect(), 'bad-signature', 'client')).toMatch(
        /server's signature over the handshake does not verify/,
      );
      expect(paths).not.toContain('/session/finish'); // the client never completes the handshake
      expect(c.server).toBeUndefined();
      expect(
        await refused(() => c.request('echo', { text: 'x' }), 'wrong-phase', 'client'),
      ).toMatch(/not open/);
    }
  });

  it('refuses a server certificate of the wrong role (the client checks who answers)', async () => {
    const c = client({ validateServer: organisationValidator(() => view, ['producer']) });
    expect(await refused(() => c.connect(), 'bad-certificate', 'client')).toMatch(
      /the server certificate is refused/,
    );
  });

  it('refuses a device of a hospital outside the trust group, and a revoked device', async () => {
    const members = pki.trustGroup.members.filter((m) => m.id !== 'consumer-ca');
    const v2 = await verifyTrustGroup(
      await signTrustGroup({ version: 2, issuedAt: new Date().toISOString(), members }, pki.root),
      pki.root.cert,
      1,
    );
    const saved = view;
    try {
      view = { ...saved, trustGroup: v2 };
      expect(await refused(() => client().connect(), 'bad-certificate')).toMatch(
        /not in trust group version 2/,
      );
      const ca = pki.hospitalCas['consumer-ca'];
      const leaf = new X509Certificate(device.chain[0]!);
      const crl = await createCrl({ cert: ca.cert, privateKey: ca.keys.privateKey }, [
        { serialNumber: leaf.serialNumber, date: new Date(Date.now() - 1000) },
      ]);
      view = { ...saved, crls: [saved.crls[0]!, crl, ...saved.crls.slice(1)] };
      expect(await refused(() => client().connect(), 'bad-certificate')).toMatch(
        /dr\.bob was revoked/,
      );
    } finally {
      view = saved;
    }
  });

  it('refuses tampered, reordered and replayed messages', async () => {
    const c = client();
    await c.connect();
    const m0 = await c.sealRequest(
      new TextEncoder().encode(JSON.stringify({ path: 'echo', body: { text: 'a' } })),
    );
    const m1 = await c.sealRequest(
      new TextEncoder().encode(JSON.stringify({ path: 'echo', body: { text: 'b' } })),
    );
    expect(await refused(() => post('/session/message', m1), 'out-of-order')).toMatch(
      /message 1 arrived where 0 was due/,
    ); // reordered
    const data = Buffer.from(m0.data, 'base64url');
    data[5]! ^= 1;
    const tampered: Sealed = { ...m0, data: data.toString('base64url') };
    expect(await refused(() => post('/session/message', tampered), 'bad-message')).toMatch(
      /failed authentication/,
    );
    await post('/session/message', m0);
    await refused(() => post('/session/message', m0), 'out-of-order'); // replayed
  });

  it('refuses, at the client, a tampered or reordered reply', async () => {
    const c = client({}, async (path, body) => {
      const r = (await post(path, body)) as Sealed;
      if (path !== '/session/message') return r;
      const data = Buffer.from(r.data, 'base64url');
      data[3]! ^= 0x40;
      return { ...r, data: data.toString('base64url') };
    });
    await c.connect();
    expect(await refused(() => c.request('echo', { text: 'x' }), 'bad-message', 'client')).toMatch(
      /failed authentication/,
    );
    const d = client({}, async (path, body) => {
      const r = (await post(path, body)) as Sealed;
      return path === '/session/message' ? { ...r, seq: r.seq + 1 } : r;
    });
    await d.connect();
    expect(await refused(() => d.request('echo', { text: 'x' }), 'out-of-order', 'client')).toMatch(
      /response 1 arrived where 0 was due/,
    );
  });

  it('carries calls issued at once one after the other, whatever order the network would give them', async () => {
    // The first message is slow on the wire: sent at once, the second would overtake it and be
    // refused as out of order (the study search box asks two queries at once).
    const slowFirst: Post = async (path, body) => {
      if (path === '/session/message' && (body as Sealed).seq === 0)
        await new Promise((r) => setTimeout(r, 50));
      return post(path, body);
    };
    const c = client({}, slowFirst);
    await c.connect();
    const before = refusals.length;
    const collect = async () => {
      const parts: Uint8Array[] = [];
      for await (const p of c.stream('bytes', { n: 40_000 }, injectStream())) parts.push(p);
      return Buffer.concat(parts).length;
    };
    const answers = await Promise.all([
      c.request<{ echo: string }>('echo', { text: 'a' }),
      c.request<{ echo: string }>('echo', { text: 'b' }),
      collect(),
      c.request<{ echo: string }>('echo', { text: 'c' }),
    ]);
    expect(answers).toEqual(
      [{ echo: 'a' }, { echo: 'b' }, 40_000, { echo: 'c' }].map((a) =>
        typeof a === 'number' ? a : expect.objectContaining(a),
      ),
    );
    expect(refusals.slice(before)).toEqual([]);
    // A consumer that leaves a stream early lets the next call through (it does not wait forever).
    const early = c.stream('bytes', { n: 10 }, injectStream());
    for await (const _ of early) break;
    await c.close();
  });

  it('registers an operation name once, and answers a message name asked as a stream as unknown', async () => {
    const again = stream('echo', N_BYTES);
    expect(() => app.sessionOperations.stream(again, async () => emptyStream())).toThrow(
      /registered twice/,
    );
    const c = client();
    await c.connect();
    const asStream = c.stream('echo', { text: 'x' }, injectStream());
    await expect(asStream.next()).rejects.toMatchObject({ code: 'unknown-operation' });
    expect(await c.request('echo', { text: 'still open' })).toMatchObject({ echo: 'still open' });
  });

  it('streams a large answer as sealed frames of the negotiated packet size', async () => {
    const c = client();
    await c.connect();
    const parts: Uint8Array[] = [];
    for await (const p of c.stream('bytes', { n: 100_000 }, injectStream())) parts.push(p);
    // The operation yields 10 kB pieces; they travel in full packets (32 kB less the kind byte),
    // not a frame per piece.
    expect(parts.map((p) => p.length)).toEqual([32767, 32767, 32767, 100_000 - 3 * 32767]);
    expect(Buffer.concat(parts).equals(Buffer.from(pattern(0, 100_000)))).toBe(true);
    expect(await c.request('echo', { text: 'after' })).toMatchObject({ echo: 'after' }); // sequence kept
    const d = client();
    await d.connect();
    const tampered = d.stream(
      'bytes',
      { n: 50_000 },
      injectStream((b) => void (b[20]! ^= 1)),
    );
    expect(
      await refused(
        () =>
          (async () => {
            for await (const _ of tampered) void _;
          })(),
        'bad-message',
        'client',
      ),
    ).toMatch(/failed authentication/);
  });

  it('ends a stream that fails midway with a sealed 500, after all it had made before the failure', async () => {
    const c = client();
    await c.connect();
    const parts: Uint8Array[] = [];
    const failed = await (async () => {
      for await (const p of c.stream('fails', { n: 70_000 }, injectStream())) parts.push(p);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failed).toBeInstanceOf(RemoteError);
    expect(failed).toMatchObject({ status: 500, code: 'internal' });
    expect((failed as Error).message).toBe('fails failed midway'); // not the server's own error
    // Two full packets, then the 4466 bytes still pending when the source failed (a retrieval's
    // last whole instance reaches the client, as the cloud's delivery record counts it).
    expect(parts.map((p) => p.length)).toEqual([32767, 32767, 4466]);
    expect(Buffer.concat(parts).equals(Buffer.from(pattern(0, 70_000)))).toBe(true);
    expect(await c.request('echo', { text: 'after' })).toMatchObject({ echo: 'after' }); // sequence kept
  });

  it('expires idle sessions', async () => {
    const c = client();
    await c.connect();
    clock += 61_000;
    expect(await refused(() => c.request('echo', { text: 'late' }), 'expired')).toMatch(
      /expired after inactivity/,
    );
  });
});
