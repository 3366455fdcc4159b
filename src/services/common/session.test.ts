// The ISCL-style session through Fastify (app.inject): a clinician's device and a service agree a
// version and packet size, authenticate each other with certified keys, exchange sealed messages and
// disconnect; every attack is refused with a clear reason, and every refusal is reported.
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
import { sessionPlugin } from './session.ts';

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
    onRefusal: (r, m) => refusals.push(`${r}: ${m}`),
  });
  app = Fastify();
  await app.register(sessionPlugin, {
    server,
    operations: {
      echo: {
        schema: {
          type: 'object',
          required: ['text'],
          additionalProperties: false,
          properties: { text: { type: 'string', maxLength: 100 } },
        },
        handler: async (body: { text: string }, ctx) => ({
          echo: body.text,
          clinician: ctx.client.attributes.clinicianId,
          packet: ctx.packet,
        }),
      },
    },
    streams: {
      bytes: {
        schema: {
          type: 'object',
          required: ['n'],
          additionalProperties: false,
          properties: { n: { type: 'integer', minimum: 0, maximum: 1_000_000 } },
        },
        handler: async (body: { n: number }) =>
          (async function* () {
            for (let o = 0; o < body.n; o += 10_000) yield pattern(o, Math.min(10_000, body.n - o));
          })(),
      },
    },
  });
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
    expect(await reason(c.request('echo', { text: 42 }))).toBe('bad-request'); // schema-validated inside
    await c.close();
    expect(await reason(c.request('echo', { text: 'again' }))).toBe('closed');
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

  it('refuses an unsupported version', async () => {
    expect(await reason(client({ versions: ['ISCL-DES-MD5/0'] }).connect())).toBe(
      'unsupported-version',
    );
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
    expect(await reason(post('/session/authenticate', { ...firstAuth, sessionId }))).toBe(
      'replayed-challenge',
    );

    const forger: Post = async (path, body) => {
      if (path === '/session/finish')
        (body as { signature: string }).signature = Buffer.alloc(64, 1).toString('base64url');
      return post(path, body);
    };
    expect(await reason(client({}, forger).connect())).toBe('bad-signature');
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
      expect(await reason(client().connect())).toBe('bad-certificate');
      expect(refusals.at(-1)).toMatch(/not in trust group version 2/);
      const ca = pki.hospitalCas['consumer-ca'];
      const leaf = new X509Certificate(device.chain[0]!);
      const crl = await createCrl({ cert: ca.cert, privateKey: ca.keys.privateKey }, [
        { serialNumber: leaf.serialNumber, date: new Date(Date.now() - 1000) },
      ]);
      view = { ...saved, crls: [saved.crls[0]!, crl, ...saved.crls.slice(1)] };
      expect(await reason(client().connect())).toBe('bad-certificate');
      expect(refusals.at(-1)).toMatch(/dr\.bob was revoked/);
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
    expect(await reason(post('/session/message', m1))).toBe('out-of-order'); // reordered
    const data = Buffer.from(m0.data, 'base64url');
    data[5]! ^= 1;
    const tampered: Sealed = { ...m0, data: data.toString('base64url') };
    expect(await reason(post('/session/message', tampered))).toBe('bad-message');
    await post('/session/message', m0);
    expect(await reason(post('/session/message', m0))).toBe('out-of-order'); // replayed
    expect(refusals.some((r) => r.startsWith('bad-message'))).toBe(true);
  });

  it('streams a large answer as sealed frames of the negotiated packet size', async () => {
    const c = client();
    await c.connect();
    const parts: Uint8Array[] = [];
    for await (const p of c.stream('bytes', { n: 100_000 }, injectStream())) parts.push(p);
    expect(parts.length).toBeGreaterThan(3); // 100 kB in packets of at most 32 kB
    expect(Math.max(...parts.map((p) => p.length))).toBeLessThan(32768);
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
      await reason(
        (async () => {
          for await (const _ of tampered) void _;
        })(),
      ),
    ).toBe('bad-message');
  });

  it('expires idle sessions', async () => {
    const c = client();
    await c.connect();
    clock += 61_000;
    expect(await reason(c.request('echo', { text: 'late' }))).toBe('expired');
  });
});
