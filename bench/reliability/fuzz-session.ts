/**
 * The session layer's fuzz target (issue 17, "session message parsers"): the handshake bodies and
 * sealed messages as the server reads them (the real Fastify plugin of `src/services/common/session.ts`
 * over `SessionServer`, through `app.inject`: JSON parsing, the schemas, `connect`, `authenticate`,
 * `finish`, `open`, the operation's plaintext), and the server's answers as the client reads them
 * (`SessionClient.connect` with mutated connect and authenticate replies, the stream frame parser of
 * `SessionClient.stream` with mutated frame headers, ciphertext and chunking, and a peer that
 * authenticates but seals malformed replies and final frames). Inputs are kept as a kind byte and
 * UTF-8 text (a JSON template whose `$SID`, `$CH`, `$SEQ`, `$DATA` placeholders the run fills from a
 * live session, or the list of mutations to apply to a real stream), so that a kept input replays on
 * any later session. Typed errors are the project's (`ZtvError`, `SessionError`) and a service's
 * refusal (`RemoteError`, an HTTP 4xx); a 500 from the server or any other exception is a defect.
 */
import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { randomBytes, toBase64Url, utf8 } from '../../src/core/bytes.ts';
import { signingKeyFromCryptoKeys } from '../../src/core/crypto/keys.ts';
import { isZtvError } from '../../src/core/errors.ts';
import { message, stream } from '../../src/core/operations/contract.ts';
import { createDemoPki } from '../../src/core/pki/demo.ts';
import {
  createCsr,
  generateEncryptionKeys,
  generateSigningKeys,
  issueDeviceFromCsr,
} from '../../src/core/pki/issue.ts';
import { OID } from '../../src/core/pki/oids.ts';
import type { PkiView } from '../../src/core/pki/resolver.ts';
import { deviceValidator, organisationValidator } from '../../src/core/session/peers.ts';
import {
  PROTOCOL_VERSION,
  RemoteError,
  SessionClient,
  SessionServer,
  type Credentials,
  type Post,
  type Sealed,
} from '../../src/core/session/protocol.ts';
import { sessionPlugin } from '../../src/services/common/session.ts';
import { mutateDataSet, mutationArb, type Mutation, type Target } from './fuzz.ts';

/** The kinds of input, by the byte that starts a kept one. */
export const SESSION_KINDS = [
  'connect body',
  'authenticate body',
  'finish body',
  'sealed message plaintext',
  'sealed message envelope',
  'sealed stream envelope',
  'stream frames on the wire',
  'malformed frames from an authenticated peer',
  'malformed reply from an authenticated peer',
  'handshake replies',
] as const;

/** The kinds whose input is a JSON template, with fields replaced and text mutated. */
type TemplateKind = 0 | 1 | 2 | 3 | 4 | 5 | 8 | 9;
interface FieldEdit {
  readonly field: number;
  readonly value: number;
}
type SessionRecipe =
  | { kind: TemplateKind; fields: FieldEdit[]; muts: Mutation[] }
  | { kind: 6; n: number; chunk: number; ops: FrameOp[] }
  | { kind: 7; frames: { k: number; p: number; muts: Mutation[] }[] };
interface FrameOp {
  readonly op: 'seq' | 'len' | 'flip' | 'cut' | 'drop' | 'dup' | 'swap' | 'insert';
  readonly frame: number;
  readonly value: number;
}

/** Values a field is replaced by: other types, edge numbers, strings of the wrong shape. */
const VALUES: unknown[] = [null, 0, -1, 1.5, 1e308, 2 ** 53, '', 'x', '!!', [], {}, [null], [''], true, 'ZTV-ISCL/2', '0'.repeat(32), 'f'.repeat(32), 'A'.repeat(43), 'AAAA', '$SID', '$SEQ', '$SEQ+1', '$SEQ-1', '$DATA~flip', '$DATA~cut', '$DATA~long', '$OTHER']; // prettier-ignore

/** An HTTP refusal through the client's `post`: 4xx is the server's typed answer, 5xx a defect. */
const refusal = (status: number, body: string): Error =>
  status >= 500
    ? new Error(`the server answered ${status}: ${body.slice(0, 200)}`)
    : new RemoteError(status, 'http', `HTTP ${status}`);

const typed = (e: unknown): boolean => isZtvError(e) || e instanceof RemoteError;

export async function sessionTarget(): Promise<Target<SessionRecipe>> {
  const pki = await createDemoPki();
  const view: PkiView = {
    root: pki.root.cert,
    intermediates: Object.values(pki.hospitalCas).map((c) => c.cert),
    organisations: [],
    crls: pki.crls,
    trustGroup: pki.trustGroup,
  };
  const cloud = pki.organisations.cloud;
  let clock = Date.now();
  const server = new SessionServer({
    credentials: {
      signer: await signingKeyFromCryptoKeys(
        'ECDSA-P256',
        cloud.keys.privateKey,
        cloud.keys.publicKey,
      ),
      chain: [cloud.cert.toString('pem')],
    },
    validateClient: deviceValidator(() => view),
    maxPacket: 8192,
    // The clock moves a second per input: sessions left behind are swept after a minute of inputs.
    idleMs: 60_000,
    now: () => clock,
  });
  const app: FastifyInstance = Fastify();
  await app.register(sessionPlugin, { server });
  const echo = message<{ echo: string }>()('echo', {
    type: 'object',
    required: ['text'],
    additionalProperties: false,
    properties: { text: { type: 'string', maxLength: 100 } },
  });
  const bytes = stream('bytes', {
    type: 'object',
    required: ['n'],
    additionalProperties: false,
    properties: { n: { type: 'integer', minimum: 0, maximum: 100_000 } },
  } as const);
  app.sessionOperations.handle(echo, async (body) => ({ echo: body.text }));
  app.sessionOperations.stream(bytes, async (body) =>
    (async function* () {
      for (let o = 0; o < body.n; o += 3000)
        yield new Uint8Array(Math.min(3000, body.n - o)).fill(o & 0xff);
    })(),
  );
  await app.ready();

  const keys = await generateSigningKeys(false);
  const enc = await generateEncryptionKeys(false);
  const ca = pki.hospitalCas['consumer-ca'];
  const cert = await issueDeviceFromCsr(
    { cert: ca.cert, privateKey: ca.keys.privateKey },
    await createCsr(keys, enc.publicKey, 'fuzz device'),
    { id: 'dr.fuzz', role: 'physician', domain: OID.domainConsumer },
    'Riverside',
  );
  const device: Credentials = {
    signer: await signingKeyFromCryptoKeys('ECDSA-P256', keys.privateKey, keys.publicKey),
    chain: [cert.toString('pem'), ca.cert.toString('pem')],
  };
  const ephemeral = toBase64Url(
    new Uint8Array(
      await crypto.subtle.exportKey(
        'spki',
        (
          (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, [
            'deriveBits',
          ])) as CryptoKeyPair
        ).publicKey,
      ),
    ),
  );

  /** A raw POST through the real plugin: the body as text, the answer's status and text. */
  const raw = async (path: string, payload: string) => {
    const r = await app.inject({
      method: 'POST',
      url: path,
      payload,
      headers: { 'content-type': 'application/json' },
    });
    return { status: r.statusCode, body: r.body, bytes: new Uint8Array(r.rawPayload) };
  };
  const post: Post = async (path, body) => {
    const r = await raw(path, JSON.stringify(body));
    if (r.status >= 400) throw refusal(r.status, r.body);
    return JSON.parse(r.body) as unknown;
  };
  /** The client's transport: the plugin, unless an input stands in for the server. */
  let via: Post | undefined;
  const client = (p: Post = (path, body) => (via ?? post)(path, body)) =>
    new SessionClient(p, {
      credentials: device,
      validateServer: organisationValidator(() => view, ['cloud']),
      maxPacket: 8192,
    });
  /** A session kept open across inputs (reopened after an input that may have desynchronised it). */
  let live: SessionClient | undefined;
  const open = async (): Promise<SessionClient> => {
    if (!live) {
      live = client();
      await live.connect();
    }
    return live;
  };

  /** A fresh session id in the phase an input needs, and a fresh challenge. */
  const connected = async (): Promise<string> =>
    (
      JSON.parse(
        (await raw('/session/connect', `{"versions":["${PROTOCOL_VERSION}"],"maxPacket":8192}`))
          .body,
      ) as { sessionId: string }
    ).sessionId;
  const challenge = () => toBase64Url(randomBytes(32));

  const BASES: Record<number, Record<string, unknown>> = {
    0: { versions: [PROTOCOL_VERSION], maxPacket: 65536 },
    1: { sessionId: '$SID', challenge: '$CH', ephemeral, chain: device.chain },
    2: { sessionId: '$SID', signature: toBase64Url(randomBytes(64)) },
    3: { path: 'echo', body: { text: 'hello' } },
    4: { sessionId: '$SID', seq: '$SEQ', data: '$DATA' },
    5: { sessionId: '$SID', seq: '$SEQ', data: '$DATA' },
    8: { status: 200, body: { echo: 'hello' } },
    9: { sessionId: 'x', version: PROTOCOL_VERSION, packet: 8192, challenge: 'x', ephemeral: 'x', chain: 'x', signature: 'x' }, // prettier-ignore
  };
  const PLAINTEXT_PATHS = ['echo', 'bytes', '/session/close', '/session/message', '', 'ECHO'];
  const FINAL: string[] = ['{"status":200}', '{"status":404,"error":"x","message":"y"}', '{"status":500}', 'null', '[]', '{}', '{"status":"200"}', 'not JSON', '', '{"status":200,"error":7,"message":{}}', '"x"']; // prettier-ignore

  const fieldEdits = fc.array(fc.record({ field: fc.nat(), value: fc.nat() }), { maxLength: 3 });
  const textMuts = fc.array(
    mutationArb.filter(
      (m) => m.op === 'flip' || m.op === 'truncate' || m.op === 'insert' || m.op === 'delete',
    ),
    { maxLength: 2 },
  );
  const arbitrary: fc.Arbitrary<SessionRecipe> = fc.oneof(
    fc.record({
      kind: fc.constantFrom<TemplateKind>(0, 1, 2, 3, 4, 5, 8, 9),
      fields: fieldEdits,
      muts: textMuts,
    }),
    fc.record({
      kind: fc.constant(6 as const),
      n: fc.oneof(fc.constantFrom(0, 1, 8190, 8191, 8192, 20_000), fc.nat({ max: 30_000 })),
      chunk: fc.integer({ min: 1, max: 20_000 }),
      ops: fc.array(
        fc.record({
          op: fc.constantFrom('seq', 'len', 'flip', 'cut', 'drop', 'dup', 'swap', 'insert'),
          frame: fc.nat(),
          value: fc.oneof(fc.constantFrom(0, 1, 7, 8, 8192, 8256, 8257, 0xffffffff), fc.nat()),
        }),
        { maxLength: 3 },
      ),
    }),
    fc.record({
      kind: fc.constant(7 as const),
      frames: fc.array(fc.record({ k: fc.nat({ max: 255 }), p: fc.nat(), muts: textMuts }), {
        minLength: 1,
        maxLength: 4,
      }),
    }),
  );

  const build = (r: SessionRecipe): Uint8Array => {
    let text: string;
    if (r.kind === 6) text = JSON.stringify({ n: r.n, chunk: r.chunk, ops: r.ops });
    else if (r.kind === 7)
      text = JSON.stringify(
        r.frames.map((f) => ({
          // Mostly the three kinds the client knows, sometimes any byte.
          k: f.k < 200 ? f.k % 3 : f.k,
          p:
            f.k % 3 === 0 && f.k < 200
              ? 'pixels'
              : new TextDecoder().decode(
                  mutateDataSet(utf8(FINAL[f.p % FINAL.length]!), 0, true, f.muts),
                ),
        })),
      );
    else {
      const doc: Record<string, unknown> = structuredClone(BASES[r.kind]!);
      const keys = Object.keys(doc);
      for (const e of r.fields) {
        const key = keys[e.field % keys.length]!;
        doc[key] =
          r.kind === 3 && key === 'path'
            ? PLAINTEXT_PATHS[e.value % PLAINTEXT_PATHS.length]
            : VALUES[e.value % VALUES.length];
      }
      text = JSON.stringify(doc);
      if ('muts' in r && r.muts.length)
        text = new TextDecoder().decode(mutateDataSet(utf8(text), 0, true, r.muts));
    }
    const out = new Uint8Array(1 + utf8(text).length);
    out[0] = r.kind;
    out.set(utf8(text), 1);
    return out;
  };

  /** Fills a template's placeholders from a live session's sealed request. */
  const fill = (text: string, sid: string, sealed?: Sealed, other?: string): string => {
    const data = sealed?.data ?? '';
    const flipped = data ? `${data[0] === 'A' ? 'B' : 'A'}${data.slice(1)}` : '';
    return text
      .replaceAll('"$SEQ+1"', String((sealed?.seq ?? 0) + 1))
      .replaceAll('"$SEQ-1"', String((sealed?.seq ?? 0) - 1))
      .replaceAll('"$SEQ"', String(sealed?.seq ?? 0))
      .replaceAll('$DATA~flip', flipped)
      .replaceAll('$DATA~cut', data.slice(0, Math.floor(data.length / 2)))
      .replaceAll('$DATA~long', data + data)
      .replaceAll('$DATA', data)
      .replaceAll('$SID', sid)
      .replaceAll('$OTHER', other ?? sid)
      .replaceAll('$CH', challenge());
  };

  /** The server must answer: a 5xx is a defect (an untyped error inside it). */
  const answered = async (path: string, payload: string) => {
    const r = await raw(path, payload);
    if (r.status >= 500) throw refusal(r.status, r.body);
    return r;
  };

  const run = async (input: Uint8Array): Promise<void> => {
    clock += 1000;
    const kind = input[0] ?? 0;
    const text = new TextDecoder().decode(input.subarray(1));
    try {
      switch (kind) {
        case 0:
          await answered('/session/connect', text);
          return;
        case 1:
          await answered('/session/authenticate', fill(text, await connected()));
          return;
        case 2: {
          // A session in the challenged phase: connected, then authenticated by a valid request.
          const sid = await connected();
          const a = await raw(
            '/session/authenticate',
            JSON.stringify({
              sessionId: sid,
              challenge: challenge(),
              ephemeral,
              chain: device.chain,
            }),
          );
          if (a.status !== 200) throw new Error(`authenticate answered ${a.status}: ${a.body}`);
          await answered('/session/finish', fill(text, sid));
          return;
        }
        case 3: {
          // Any plaintext, sealed as the session's next message: the server's reading of it.
          const c = await open();
          const sealed = await c.sealRequest(utf8(text));
          const r = await answered('/session/message', JSON.stringify(sealed));
          if (r.status !== 200) throw refusal(r.status, r.body);
          const reply = JSON.parse(
            new TextDecoder().decode(await c.openResponse(JSON.parse(r.body) as Sealed)),
          ) as { status: number; body?: { closed?: boolean } };
          if (reply.status >= 500) throw new Error(`the operation answered ${reply.status}`);
          if (reply.body?.closed) live = undefined;
          return;
        }
        case 4:
        case 5: {
          const c = await open();
          const other = await connected();
          const sealed = await c.sealRequest(utf8('{"path":"echo","body":{"text":"x"}}'));
          live = undefined; // the server may not have taken it: the next input opens afresh
          await answered(kind === 4 ? '/session/message' : '/session/stream', fill(text, c.id, sealed, other)); // prettier-ignore
          return;
        }
        case 6: {
          const { n, chunk, ops } = JSON.parse(text) as { n: number; chunk: number; ops: FrameOp[] }; // prettier-ignore
          const c = await open();
          live = undefined;
          for await (const part of c.stream('bytes', { n }, async (path, sealed) => {
            const r = await answered(path, JSON.stringify(sealed));
            if (r.status !== 200) throw refusal(r.status, r.body);
            return rechunk(mutateFrames(r.bytes, ops), Math.max(1, chunk));
          }))
            void part.length;
          live = c; // completed: both ends agree on the sequence
          return;
        }
        case 7: {
          // An authenticated peer seals whatever frames it likes.
          const frames = JSON.parse(text) as { k: number; p: string }[];
          const c = await open();
          live = undefined;
          for await (const part of c.stream('bytes', { n: 1 }, async (_path, sealed) => {
            const o = await server.open(sealed);
            const out: Uint8Array[] = [];
            for (const f of frames)
              out.push(await server.sealFrame(o.sessionId, f.k & 0xff, utf8(String(f.p)).subarray(0, 8000))); // prettier-ignore
            return out;
          }))
            void part.length;
          return;
        }
        case 8: {
          // An authenticated peer seals whatever reply it likes to a request.
          const c = await open();
          live = undefined;
          via = async (_path, body) => {
            const o = await server.open(body as Sealed);
            return server.seal(o.sessionId, utf8(text).subarray(0, 8000));
          };
          try {
            await c.request('echo', { text: 'x' });
          } finally {
            via = undefined;
          }
          return;
        }
        case 9: {
          // The handshake against a server whose connect and authenticate replies are altered.
          let edits: Record<string, unknown> = {};
          try {
            edits = JSON.parse(text) as Record<string, unknown>;
          } catch {
            edits = { sessionId: text };
          }
          const c = client(async (path, body) => {
            const r = (await post(path, body)) as Record<string, unknown>;
            if (path === '/session/finish' || typeof edits !== 'object' || !edits) return r;
            const out = { ...r };
            for (const [k, v] of Object.entries(edits))
              if (k in r && v !== BASES[9]![k]) out[k] = v;
            return out;
          });
          await c.connect();
          return;
        }
        default:
          return;
      }
    } catch (e) {
      live = undefined; // an expired or refused session is not used again
      if (!typed(e)) throw e;
    }
  };

  return {
    name: 'session',
    what: 'the session layer at both ends: handshake bodies (connect, authenticate, finish) and sealed envelopes and plaintexts read by the real server plugin (`SessionServer` via `app.inject`), and at the client mutated handshake replies, stream frames mutated on the wire (headers, ciphertext, chunking) and malformed replies and final frames sealed by an authenticated peer',
    arbitrary,
    build,
    run,
  };
}

/** Splits a frame stream into its frames (u32 seq ‖ u32 length ‖ ciphertext); a tail is kept whole. */
function framesOf(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at + 8 <= b.length) {
    const len = new DataView(b.buffer, b.byteOffset + at, 8).getUint32(4);
    const end = Math.min(b.length, at + 8 + len);
    out.push(b.slice(at, end));
    at = end;
  }
  if (at < b.length) out.push(b.slice(at));
  return out;
}

/** Applies frame-level mutations: header fields, ciphertext bits, frames cut, dropped, doubled, swapped. */
export function mutateFrames(b: Uint8Array, ops: readonly FrameOp[]): Uint8Array {
  let frames = framesOf(b);
  for (const o of ops) {
    if (!frames.length) break;
    const i = o.frame % frames.length;
    const f = frames[i]!;
    const dv = new DataView(f.buffer, f.byteOffset, f.length);
    switch (o.op) {
      case 'seq':
        if (f.length >= 8) dv.setUint32(0, o.value >>> 0);
        break;
      case 'len':
        if (f.length >= 8) dv.setUint32(4, o.value >>> 0);
        break;
      case 'flip':
        if (f.length) f[o.value % f.length]! ^= 1 << (o.value % 8);
        break;
      case 'cut':
        frames[i] = f.slice(0, o.value % (f.length + 1));
        frames = frames.slice(0, i + 1);
        break;
      case 'drop':
        frames.splice(i, 1);
        break;
      case 'dup':
        frames.splice(i, 0, f.slice());
        break;
      case 'swap': {
        const j = o.value % frames.length;
        [frames[i], frames[j]] = [frames[j]!, f];
        break;
      }
      case 'insert':
        frames.splice(
          i,
          0,
          Uint8Array.from({ length: o.value % 64 }, (_, k) => (k * 37) & 0xff),
        );
        break;
    }
  }
  const out = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

function* rechunk(b: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
