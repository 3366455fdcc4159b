/**
 * What every service's Fastify app shares: a logger that never writes bodies, headers or query
 * strings (they may hold tickets, tokens or identifiers) — an unmatched route is logged and answered
 * by its path alone —, one JSON error shape, ZtvErrors mapped to 400s with their sentence, and limits
 * before anything else: a body longer than its route's limit (64 KiB unless the route says more) is
 * refused 413 as soon as its declared length is read, and an answer sent before its request's body
 * was read closes the connection instead of reading the rest to discard it.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { ServerOptions as HttpsOptions } from 'node:https';
import { isZtvError } from '../../core/errors.ts';

export interface AppOptions {
  readonly name: string;
  /** Log level; 'silent' in tests. */
  readonly logLevel?: string;
  /** HTTPS (mutual TLS) server options; plain HTTP when absent. */
  readonly https?: HttpsOptions;
  /** The default body limit of the app's routes (64 KiB); a route may set its own. */
  readonly bodyLimit?: number;
  /** Where the log goes (tests read it); standard output when absent. */
  readonly logStream?: { write(line: string): void };
}

/** The body limit of a route that does not set its own. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The path of a request's URL, without its query string (which may hold tokens or identifiers). */
export const pathOf = (url: string): string => {
  const q = url.search(/[?#]/);
  return (q < 0 ? url : url.slice(0, q)).slice(0, 256);
};

/** The answer to a request whose declared body is longer than its route accepts. */
const tooLarge = (limit: number) => ({
  error: 'too-large',
  message: `this request's body is limited to ${limit} bytes`,
});

export function createApp(opts: AppOptions): FastifyInstance {
  const app = Fastify({
    logger: {
      level: opts.logLevel ?? 'info',
      base: { service: opts.name },
      // Requests are logged by method, route and status only: never URL queries, headers or bodies.
      serializers: {
        req: (req: { method?: string; routeOptions?: { url?: string } }) => ({
          method: req.method,
          route: req.routeOptions?.url,
        }),
        res: (res: { statusCode?: number }) => ({ status: res.statusCode }),
      },
      redact: ['req.headers', 'req.body', 'body', 'headers', 'authorization'],
      ...(opts.logStream ? { stream: opts.logStream } : {}),
    },
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    ...(opts.https ? { https: opts.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  // A declared length beyond the route's limit is refused before anything else runs (authentication
  // included) and before a byte of the body is read; the connection is closed, not drained.
  app.addHook('onRequest', async (req, reply) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    const limit = req.routeOptions.bodyLimit ?? DEFAULT_BODY_LIMIT;
    if (declared > limit)
      return reply.code(413).header('connection', 'close').send(tooLarge(limit));
  });
  // The default answer would echo, and its log line record, the URL with its query string.
  app.setNotFoundHandler((req, reply) => {
    const path = pathOf(req.url);
    req.log.info({ path }, 'no such route');
    return reply.code(404).send({ error: 'not-found', message: `no route ${req.method} ${path}` });
  });
  app.setErrorHandler((err, req, reply) => {
    // Answered before its body was read (a refused token, a body too large): close rather than
    // read the rest of the body only to discard it.
    if (req.raw.complete === false) void reply.header('connection', 'close');
    if (err instanceof HttpError)
      return reply.code(err.status).send({ error: err.code, message: err.message });
    if (isZtvError(err)) return reply.code(400).send({ error: err.code, message: err.message });
    const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation) return reply.code(400).send({ error: 'bad-request', message: e.message });
    if (e.statusCode === 413)
      return reply.code(413).send(tooLarge(req.routeOptions.bodyLimit ?? DEFAULT_BODY_LIMIT));
    if (e.statusCode && e.statusCode < 500)
      return reply.code(e.statusCode).send({ error: e.code ?? 'bad-request', message: e.message });
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  return app;
}

/** A JSON error answer. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
