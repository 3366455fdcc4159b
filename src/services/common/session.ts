/**
 * The session layer as a Fastify plugin: the handshake routes (`/session/connect`, `/authenticate`,
 * `/finish`) and `/session/message`, which opens a sealed request, validates it against the named
 * operation's JSON schema, runs the operation with the authenticated peer, and seals the answer.
 * `/session/stream` answers a streamed operation as sealed frames of the negotiated packet size. A
 * TLS-terminating proxy in between sees only ciphertext. Refusals go to `onRefusal` (audit log).
 */
import { Readable } from 'node:stream';
import Ajv, { type ValidateFunction } from 'ajv';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { utf8 } from '../../core/bytes.ts';
import { isZtvError } from '../../core/errors.ts';
import type { SessionServer } from '../../core/session/protocol.ts';
import {
  FRAME_DATA,
  FRAME_END,
  FRAME_ERROR,
  SessionError,
  type PeerIdentity,
  type Sealed,
} from '../../core/session/protocol.ts';

export interface OperationContext {
  readonly client: PeerIdentity;
  readonly sessionId: string;
  readonly packet: number;
}

/** An operation reachable through sealed messages: its body schema and its handler. */
export interface Operation {
  readonly schema: object;
  readonly handler: (body: never, ctx: OperationContext) => Promise<unknown>;
}

/** An error an operation throws to answer with a status and a reason (inside the sealed reply). */
export class OperationError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const b64 = { type: 'string', pattern: '^[A-Za-z0-9_-]+$', maxLength: 2_000_000 } as const;
const pemChain = {
  type: 'array',
  minItems: 1,
  maxItems: 4,
  items: { type: 'string', maxLength: 16384 },
} as const;
const sid = { type: 'string', pattern: '^[0-9a-f]{32}$' } as const;

const SCHEMAS = {
  connect: {
    type: 'object',
    required: ['versions', 'maxPacket'],
    additionalProperties: false,
    properties: {
      versions: {
        type: 'array',
        minItems: 1,
        maxItems: 8,
        items: { type: 'string', maxLength: 32 },
      },
      maxPacket: { type: 'integer', minimum: 1, maximum: 16 * 1024 * 1024 },
    },
  },
  authenticate: {
    type: 'object',
    required: ['sessionId', 'challenge', 'ephemeral', 'chain'],
    additionalProperties: false,
    properties: { sessionId: sid, challenge: b64, ephemeral: b64, chain: pemChain },
  },
  finish: {
    type: 'object',
    required: ['sessionId', 'signature'],
    additionalProperties: false,
    properties: { sessionId: sid, signature: b64 },
  },
  sealed: {
    type: 'object',
    required: ['sessionId', 'seq', 'data'],
    additionalProperties: false,
    properties: { sessionId: sid, seq: { type: 'integer', minimum: 0 }, data: b64 },
  },
} as const;

const STATUS: Record<string, number> = {
  'unsupported-version': 400,
  'bad-request': 400,
  'unknown-session': 401,
  'wrong-phase': 409,
  'bad-certificate': 403,
  'bad-signature': 401,
  'replayed-challenge': 401,
  'bad-message': 400,
  'out-of-order': 409,
  closed: 401,
  expired: 401,
};

function refuse(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof SessionError)
    return reply.code(STATUS[e.reason] ?? 400).send({ error: e.reason, message: e.message });
  throw e;
}

/** A streamed operation: its body schema, and a handler yielding the plaintext of the answer. */
export interface StreamOperation {
  readonly schema: object;
  readonly handler: (body: never, ctx: OperationContext) => Promise<AsyncIterable<Uint8Array>>;
}

export interface SessionPluginOptions {
  readonly server: SessionServer;
  readonly operations: Readonly<Record<string, Operation>>;
  readonly streams?: Readonly<Record<string, StreamOperation>>;
  /** Sees each valid operation's opened body before it runs (capture for confidentiality audits). */
  readonly onOperation?: (name: string, body: unknown) => void;
}

export async function sessionPlugin(
  app: FastifyInstance,
  opts: SessionPluginOptions,
): Promise<void> {
  const ajv = new Ajv({ allErrors: false, strict: true });
  const validators = new Map<string, ValidateFunction>();
  for (const [name, op] of Object.entries({ ...opts.operations, ...opts.streams }))
    validators.set(name, ajv.compile(op.schema));
  const { server } = opts;

  app.post('/session/connect', { schema: { body: SCHEMAS.connect } }, async (req, reply) => {
    try {
      return server.connect(req.body as never);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.post(
    '/session/authenticate',
    { schema: { body: SCHEMAS.authenticate } },
    async (req, reply) => {
      try {
        return await server.authenticate(req.body as never);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
  app.post('/session/finish', { schema: { body: SCHEMAS.finish } }, async (req, reply) => {
    try {
      return await server.finish(req.body as never);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.post('/session/stream', { schema: { body: SCHEMAS.sealed } }, async (req, reply) => {
    let opened;
    try {
      opened = await server.open(req.body as Sealed);
    } catch (e) {
      return refuse(reply, e);
    }
    const sid = opened.sessionId;
    const packet = server.packetSize(sid) - 1;
    const end = (status: number, body: object) =>
      server.sealFrame(
        sid,
        status < 400 ? FRAME_END : FRAME_ERROR,
        utf8(JSON.stringify({ status, ...body })),
      );
    let msg: { path?: unknown; body?: unknown } = {};
    try {
      msg = JSON.parse(new TextDecoder().decode(opened.plaintext)) as typeof msg;
    } catch {
      /* reported below as an unknown operation */
    }
    const name = typeof msg.path === 'string' ? msg.path : '';
    const op = opts.streams?.[name];
    const validate = validators.get(name);
    reply.header('content-type', 'application/vnd.ztv.sealed-stream');
    if (!op || !validate) {
      server.report('bad-request', `no stream ${name}`, sid);
      return reply.send(
        Buffer.from(await end(404, { error: 'unknown-operation', message: `no stream ${name}` })),
      );
    }
    if (!validate(msg.body)) {
      const message = `${name}: ${ajv.errorsText(validate.errors)}`;
      server.report('bad-request', message, sid);
      return reply.send(Buffer.from(await end(400, { error: 'bad-request', message })));
    }
    opts.onOperation?.(name, msg.body);
    const ctx = { client: opened.client, sessionId: sid, packet: packet + 1 };
    let source: AsyncIterable<Uint8Array>;
    try {
      source = await op.handler(msg.body as never, ctx);
    } catch (e) {
      const status = e instanceof OperationError ? e.status : isZtvError(e) ? 400 : 500;
      const code = e instanceof OperationError ? e.code : isZtvError(e) ? e.code : 'internal';
      if (status === 500) req.log.error({ err: e }, 'stream failed');
      return reply.send(
        Buffer.from(
          await end(status, {
            error: code,
            message: status === 500 ? `${name} failed` : (e as Error).message,
          }),
        ),
      );
    }
    // Re-chunk the plaintext into full packets and seal each as it fills: nothing is buffered
    // beyond one packet, and small pieces (a part's headers, its CRLF) share a frame with their
    // neighbours instead of each costing a frame to seal and to open. A piece waits for the packet
    // to fill: right for streams of stored data (retrievals, trails), not for a live feed.
    async function* frames(): AsyncGenerator<Uint8Array> {
      const pending = new Uint8Array(packet);
      let fill = 0;
      try {
        for await (const chunk of source) {
          for (let o = 0; o < chunk.length;) {
            const k = Math.min(packet - fill, chunk.length - o);
            pending.set(chunk.subarray(o, o + k), fill);
            fill += k;
            o += k;
            if (fill === packet) {
              yield await server.sealFrame(sid, FRAME_DATA, pending);
              fill = 0;
            }
          }
        }
        if (fill) yield await server.sealFrame(sid, FRAME_DATA, pending.subarray(0, fill));
        yield await end(200, {});
      } catch (e) {
        req.log.error({ err: e }, 'stream failed midway');
        yield await end(500, { error: 'internal', message: `${name} failed midway` });
      }
    }
    return reply.send(Readable.from(frames()));
  });

  app.post('/session/message', { schema: { body: SCHEMAS.sealed } }, async (req, reply) => {
    let opened;
    try {
      opened = await server.open(req.body as Sealed);
    } catch (e) {
      return refuse(reply, e);
    }
    const answer = async (status: number, body: unknown) =>
      server.seal(opened.sessionId, utf8(JSON.stringify({ status, body })));
    let msg: { path?: unknown; body?: unknown };
    try {
      msg = JSON.parse(new TextDecoder().decode(opened.plaintext)) as typeof msg;
    } catch {
      return answer(400, { error: 'bad-request', message: 'the secured message is not JSON' });
    }
    if (msg.path === '/session/close') {
      const sealed = await answer(200, { closed: true });
      server.close(opened.sessionId);
      return sealed;
    }
    const name = typeof msg.path === 'string' ? msg.path : '';
    const op = opts.operations[name];
    const validate = validators.get(name);
    if (!op || !validate) {
      server.report('bad-request', `no operation ${name}`, opened.sessionId);
      return answer(404, { error: 'unknown-operation', message: `no operation ${name}` });
    }
    if (!validate(msg.body)) {
      const message = `${name}: ${ajv.errorsText(validate.errors)}`;
      server.report('bad-request', message, opened.sessionId);
      return answer(400, { error: 'bad-request', message });
    }
    opts.onOperation?.(name, msg.body);
    try {
      const ctx = {
        client: opened.client,
        sessionId: opened.sessionId,
        packet: server.packetSize(opened.sessionId),
      };
      return await answer(200, await op.handler(msg.body as never, ctx));
    } catch (e) {
      if (e instanceof OperationError)
        return answer(e.status, { error: e.code, message: e.message });
      if (isZtvError(e)) return answer(400, { error: e.code, message: e.message });
      req.log.error({ err: e }, 'operation failed');
      return answer(500, { error: 'internal', message: `${name} failed` });
    }
  });
}
