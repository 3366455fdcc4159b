/**
 * What every service's Fastify app shares: a logger that never writes bodies, headers or query
 * strings (they may hold tickets, tokens or identifiers), one JSON error shape, and ZtvErrors mapped
 * to 400s with their sentence.
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
  readonly bodyLimit?: number;
}

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
    },
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    ...(opts.https ? { https: opts.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof HttpError)
      return reply.code(err.status).send({ error: err.code, message: err.message });
    if (isZtvError(err)) return reply.code(400).send({ error: err.code, message: err.message });
    const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation) return reply.code(400).send({ error: 'bad-request', message: e.message });
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
