/**
 * `GET /` of a service: what it is, its version and its health, as one small JSON document — so
 * that an operator who opens the URL the banner prints, or a load balancer's probe, gets an answer
 * rather than a 404. Health is checked on each call (the database answers, the trust view is
 * current); a failing check answers 503 with the check's name, never its error text. A process the
 * launcher's supervisor restarted says so: how many times, and how its predecessor ended.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const PACKAGE = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { name: string; version: string };

/** The platform's version, from package.json. */
export const VERSION: string = PACKAGE.version;

export interface AboutOptions {
  /** The service's name and one line on what it does. */
  readonly service: string;
  readonly description: string;
  /** Named checks; each resolves when healthy and throws otherwise. */
  readonly checks: Readonly<Record<string, () => Promise<unknown>>>;
}

const ABOUT_SCHEMA = {
  type: 'object',
  required: ['service', 'description', 'version', 'health', 'checks'],
  properties: {
    service: { type: 'string' },
    description: { type: 'string' },
    version: { type: 'string' },
    health: { type: 'string', enum: ['ok', 'unavailable'] },
    checks: { type: 'object', additionalProperties: { type: 'string', enum: ['ok', 'failed'] } },
    restarts: { type: 'integer', minimum: 0 },
    lastExit: { type: 'string' },
  },
} as const;

/** What the supervisor told this process when it started it again (src/services/supervisor.ts). */
export function restartsOf(env: NodeJS.ProcessEnv): { restarts: number; lastExit?: string } {
  const n = Number(env.ZTV_RESTARTS ?? 0);
  return {
    restarts: Number.isSafeInteger(n) && n > 0 ? n : 0,
    ...(n > 0 && env.ZTV_LAST_EXIT ? { lastExit: env.ZTV_LAST_EXIT.slice(0, 200) } : {}),
  };
}

export async function aboutPlugin(app: FastifyInstance, opts: AboutOptions): Promise<void> {
  app.get(
    '/',
    { schema: { response: { 200: ABOUT_SCHEMA, 503: ABOUT_SCHEMA } } },
    async (_req, reply) => {
      const checks: Record<string, 'ok' | 'failed'> = {};
      for (const [name, check] of Object.entries(opts.checks))
        checks[name] = await check().then(
          () => 'ok' as const,
          () => 'failed' as const,
        );
      const ok = Object.values(checks).every((c) => c === 'ok');
      const restarts = restartsOf(process.env);
      return reply.code(ok ? 200 : 503).send({
        service: opts.service,
        description: opts.description,
        version: VERSION,
        health: ok ? 'ok' : 'unavailable',
        checks,
        ...restarts,
      });
    },
  );
}
