/**
 * The viewer is the hospital's own application: its configuration (`GET /config.json`, where the
 * producer and the cloud answer) and its static build, served with a strict content security policy
 * (its code only from here; it talks to this hospital, the producer and the cloud, nothing else) and
 * read from disk per request, so a rebuilt viewer is served without a restart.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export interface ViewerOptions {
  /** The viewer's build directory; nothing is served from it when it has no index.html. */
  readonly dir: string;
  readonly urls: { readonly producer: string; readonly cloud: string; readonly consumer: string };
}

export async function viewerPlugin(app: FastifyInstance, opts: ViewerOptions): Promise<void> {
  const { producer, cloud, consumer } = opts.urls;
  app.get('/config.json', async () => ({ producer, cloud, consumer }));
  const csp = [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self' blob:",
    `connect-src 'self' ${producer} ${cloud}`,
    "img-src 'self' data: blob:",
    "style-src 'self' 'unsafe-inline'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  if (existsSync(join(opts.dir, 'index.html')))
    await app.register(fastifyStatic, {
      root: opts.dir,
      wildcard: true,
      index: 'index.html',
      setHeaders: (reply) => {
        reply.header('content-security-policy', csp);
        reply.header('x-content-type-options', 'nosniff');
        reply.header('referrer-policy', 'no-referrer');
        reply.header('cross-origin-opener-policy', 'same-origin');
      },
    });
}
