/**
 * What every service that browsers reach sends with each answer, as one plugin: CORS for the
 * viewer's origins only (an origin not listed gets no CORS header, so the browser withholds the
 * answer), preflights answered at once, and the security headers of an API — nothing is sniffed,
 * no referrer leaves, nothing is framed, no answer is cached (bodies are sealed or name clinicians). An answer that set
 * its own caching (the viewer's static files) keeps it.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export interface BrowserAccessOptions {
  /** Origins allowed to call from a browser (the viewer's). */
  readonly origins?: readonly string[];
  /** Methods and request headers the viewer uses. */
  readonly methods: readonly string[];
  readonly headers: readonly string[];
}

async function browserAccess(app: FastifyInstance, opts: BrowserAccessOptions): Promise<void> {
  const origins = new Set(opts.origins ?? []);
  const methods = opts.methods.join(', ');
  const headers = opts.headers.join(', ');
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (origin && origins.has(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'origin');
      reply.header('access-control-allow-headers', headers);
      reply.header('access-control-allow-methods', methods);
    }
    if (req.method === 'OPTIONS') return reply.code(204).send();
  });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    // Never framed: what CSP's frame-ancestors says, for clients older than CSP 2.
    reply.header('x-frame-options', 'DENY');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });
  app.options('/*', async (_req, reply) => reply.code(204).send());
}

/** Registered on the party's app itself (not encapsulated), so it covers every route. */
export const browserAccessPlugin = fp(browserAccess, {
  name: 'ztv-browser-access',
  fastify: '5.x',
});
