/**
 * The session layer as a Fastify plugin: the handshake routes (`/session/connect`, `/authenticate`,
 * `/finish`) and `/session/message`, which opens a sealed request, validates it against the named
 * operation's JSON schema, runs the operation with the authenticated peer, and seals the answer.
 * `/session/stream` answers a streamed operation as sealed frames of the negotiated packet size. A
 * TLS-terminating proxy in between sees only ciphertext. Refusals go to `onRefusal` (audit log).
 *
 * The plugin decorates the app with `sessionOperations`, where each concern's plugin registers the
 * operations it answers, by their typed contract (`src/core/operations`): the body reaches the
 * handler validated and typed, and the handler's answer must be the contract's.
 */
import { Readable } from 'node:stream';
import Ajv, { type ValidateFunction } from 'ajv';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { FromSchema } from 'json-schema-to-ts';
import { utf8 } from '../../core/bytes.ts';
import { isZtvError } from '../../core/errors.ts';
import type {
  AnswerOf,
  AnyMessageContract,
  AnyStreamContract,
  BodyOf,
} from '../../core/operations/contract.ts';
import type { SessionServer } from '../../core/session/protocol.ts';
import {
  FRAME_DATA,
  FRAME_END,
  FRAME_ERROR,
  SessionError,
  type PeerIdentity,
} from '../../core/session/protocol.ts';

export interface OperationContext {
  readonly client: PeerIdentity;
  readonly sessionId: string;
  readonly packet: number;
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

/**
 * Each route's body limit, in bytes, checked on the declared length before the body is read: the
 * handshake's steps are small (a certificate chain of at most 4 PEMs of 16 KiB at the most); a sealed
 * message holds an operation's body, the largest a consultation's (16 role assignments and 4
 * delegation chains of 4 statements, each ≤ 8 KiB: ~270 KB), sealed and in base64.
 */
export const SESSION_BODY_LIMITS = {
  connect: 1024,
  authenticate: 96 * 1024,
  finish: 1024,
  sealed: 512 * 1024,
} as const;

const b64 = {
  type: 'string',
  pattern: '^[A-Za-z0-9_-]+$',
  maxLength: SESSION_BODY_LIMITS.sealed,
} as const;
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

/** A registered operation: its body check, then the handler it runs once the body passed. */
type Entry<Answer> = (
  body: unknown,
) => { readonly error: string } | { readonly run: (ctx: OperationContext) => Promise<Answer> };

/**
 * The operations a party answers through its sessions, registered by contract. A name is
 * registered once; a body is validated against the contract's schema before its handler runs.
 */
export class SessionOperations {
  private readonly ajv = new Ajv({ allErrors: false, strict: true });
  private readonly messages = new Map<string, Entry<unknown>>();
  private readonly streams = new Map<string, Entry<AsyncIterable<Uint8Array>>>();

  /** An operation answered with one sealed JSON document. */
  handle<C extends AnyMessageContract>(
    contract: C,
    handler: (body: BodyOf<C>, ctx: OperationContext) => Promise<AnswerOf<C>>,
  ): void {
    this.add(this.messages, contract.name, contract.schema, handler);
  }

  /** An operation answered with a stream of bytes, sealed frame by frame. */
  stream<C extends AnyStreamContract>(
    contract: C,
    handler: (body: BodyOf<C>, ctx: OperationContext) => Promise<AsyncIterable<Uint8Array>>,
  ): void {
    this.add(this.streams, contract.name, contract.schema, handler);
  }

  private add<B, A>(
    to: Map<string, Entry<A>>,
    name: string,
    schema: object,
    handler: (body: B, ctx: OperationContext) => Promise<A>,
  ): void {
    if (this.messages.has(name) || this.streams.has(name))
      throw new Error(`session operation ${name} is registered twice`);
    // The contract's body type is its schema's (json-schema-to-ts): what passes the check is a B.
    const validate = this.ajv.compile(schema) as ValidateFunction<B>;
    to.set(name, (body) =>
      validate(body)
        ? { run: (ctx) => handler(body, ctx) }
        : { error: `${name}: ${this.ajv.errorsText(validate.errors)}` },
    );
  }

  /** The message operation of that name, if registered. */
  message(name: string): Entry<unknown> | undefined {
    return this.messages.get(name);
  }

  /** The stream operation of that name, if registered. */
  streamed(name: string): Entry<AsyncIterable<Uint8Array>> | undefined {
    return this.streams.get(name);
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The operations this app's sessions answer (set by `sessionPlugin`). */
    readonly sessionOperations: SessionOperations;
  }
}

export interface SessionPluginOptions {
  readonly server: SessionServer;
  /** Sees each valid operation's opened body before it runs (capture for confidentiality audits). */
  readonly onOperation?: (name: string, body: unknown) => void;
}

/**
 * The session routes, and `app.sessionOperations` for the plugins registered after it (it is not
 * encapsulated: the concern plugins of the party are its siblings).
 */
export const sessionPlugin = fp(sessionRoutes, { name: 'ztv-session', fastify: '5.x' });

async function sessionRoutes(app: FastifyInstance, opts: SessionPluginOptions): Promise<void> {
  const operations = new SessionOperations();
  app.decorate('sessionOperations', operations);
  const { server } = opts;

  /** A handshake step's handler: a refusal is answered with its status and reason. */
  const refusing =
    <B>(run: (req: FastifyRequest<{ Body: B }>) => unknown) =>
    async (req: FastifyRequest<{ Body: B }>, reply: FastifyReply) => {
      try {
        return await run(req);
      } catch (e) {
        return refuse(reply, e);
      }
    };
  type Connect = FromSchema<typeof SCHEMAS.connect>;
  type Authenticate = FromSchema<typeof SCHEMAS.authenticate>;
  type Finish = FromSchema<typeof SCHEMAS.finish>;
  app.post<{ Body: Connect }>(
    '/session/connect',
    { bodyLimit: SESSION_BODY_LIMITS.connect, schema: { body: SCHEMAS.connect } },
    refusing<Connect>((req) => server.connect(req.body)),
  );
  app.post<{ Body: Authenticate }>(
    '/session/authenticate',
    { bodyLimit: SESSION_BODY_LIMITS.authenticate, schema: { body: SCHEMAS.authenticate } },
    refusing<Authenticate>((req) => server.authenticate(req.body)),
  );
  app.post<{ Body: Finish }>(
    '/session/finish',
    { bodyLimit: SESSION_BODY_LIMITS.finish, schema: { body: SCHEMAS.finish } },
    refusing<Finish>((req) => server.finish(req.body)),
  );
  type SealedBody = { Body: FromSchema<typeof SCHEMAS.sealed> };
  app.post<SealedBody>(
    '/session/stream',
    { bodyLimit: SESSION_BODY_LIMITS.sealed, schema: { body: SCHEMAS.sealed } },
    async (req, reply) => {
      let opened;
      try {
        opened = await server.open(req.body);
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
      const op = operations.streamed(name);
      reply.header('content-type', 'application/vnd.ztv.sealed-stream');
      if (!op) {
        await server.report('bad-request', `no stream ${name}`, sid);
        return reply.send(
          Buffer.from(await end(404, { error: 'unknown-operation', message: `no stream ${name}` })),
        );
      }
      const accepted = op(msg.body);
      if ('error' in accepted) {
        await server.report('bad-request', accepted.error, sid);
        return reply.send(
          Buffer.from(await end(400, { error: 'bad-request', message: accepted.error })),
        );
      }
      opts.onOperation?.(name, msg.body);
      const ctx = { client: opened.client, sessionId: sid, packet: packet + 1 };
      let source: AsyncIterable<Uint8Array>;
      try {
        source = await accepted.run(ctx);
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
          // What was made before the failure still leaves (a retrieval's last whole instance).
          if (fill) yield await server.sealFrame(sid, FRAME_DATA, pending.subarray(0, fill));
          yield await end(500, { error: 'internal', message: `${name} failed midway` });
        }
      }
      return reply.send(Readable.from(frames()));
    },
  );

  app.post<SealedBody>(
    '/session/message',
    { bodyLimit: SESSION_BODY_LIMITS.sealed, schema: { body: SCHEMAS.sealed } },
    async (req, reply) => {
      let opened;
      try {
        opened = await server.open(req.body);
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
      const op = operations.message(name);
      if (!op) {
        await server.report('bad-request', `no operation ${name}`, opened.sessionId);
        return answer(404, { error: 'unknown-operation', message: `no operation ${name}` });
      }
      const accepted = op(msg.body);
      if ('error' in accepted) {
        await server.report('bad-request', accepted.error, opened.sessionId);
        return answer(400, { error: 'bad-request', message: accepted.error });
      }
      opts.onOperation?.(name, msg.body);
      try {
        const ctx = {
          client: opened.client,
          sessionId: opened.sessionId,
          packet: server.packetSize(opened.sessionId),
        };
        return await answer(200, await accepted.run(ctx));
      } catch (e) {
        if (e instanceof OperationError)
          return answer(e.status, { error: e.code, message: e.message });
        if (isZtvError(e)) return answer(400, { error: e.code, message: e.message });
        req.log.error({ err: e }, 'operation failed');
        return answer(500, { error: 'internal', message: `${name} failed` });
      }
    },
  );
}
