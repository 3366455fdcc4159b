/**
 * The producer hospital: protects its instances and outsources them to the cloud (STOW-RS in, mutual
 * TLS out), keeping `patient → study → series → (ID_i, K_i)` with image keys wrapped under a
 * key-encryption key the database never sees; and answers consultations: it logs each request first,
 * checks the requester's hospital against the authority's current trust group, decides with its
 * policy, and issues the blind ticket — the cloud's part and the device's part.
 *
 * The app is its concerns as Fastify plugins: browser access (CORS and security headers), `GET /`,
 * STOW-RS (`stow.ts`, on `outsourcing.ts`), the session layer with consultation (`consultation.ts`),
 * the revocation of delegations (`revocation.ts`) and the auditors' operations (`audit.ts`). Its
 * tables and migrations are in `schema.ts`.
 */
import type { FastifyInstance } from 'fastify';
import type { SessionServer } from '../../core/session/protocol.ts';
import { aboutPlugin } from '../common/about.ts';
import { browserAccessPlugin } from '../common/browser.ts';
import { createApp } from '../common/http.ts';
import { sessionPlugin } from '../common/session.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import { clinicianResolver } from '../policy/resolvers.ts';
import { sql } from '../storage/db.ts';
import { producerAuditPlugin } from './audit.ts';
import { consultationPlugin, type ConsultationOptions } from './consultation.ts';
import { Producer, type OutsourcingDeps } from './outsourcing.ts';
import { revocationPlugin } from './revocation.ts';
import { stowPlugin } from './stow.ts';

export { producerMigrations, type ProducerTables } from './schema.ts';
export { Producer, slicePosition, type OutsourceResult } from './outsourcing.ts';
export { PRIVATE_CREATOR } from './stow.ts';

export type ProducerDeps = OutsourcingDeps &
  ConsultationOptions & {
    readonly policy: PolicyEngine;
    readonly domain: string;
    readonly sessions: SessionServer;
    /** scrypt hash of the hospital integration token (STOW-RS). */
    readonly stowTokenHash: string;
    /** STOW-RS limits in bytes and parts (512 MiB a request, 128 MiB an instance, 4096 instances). */
    readonly stowLimits?: {
      readonly body?: number;
      readonly part?: number;
      readonly parts?: number;
    };
    readonly corsOrigins?: readonly string[];
    readonly logLevel?: string;
  };

export async function buildProducer(
  deps: ProducerDeps,
): Promise<{ app: FastifyInstance; producer: Producer }> {
  const producer = new Producer(deps);
  const app = createApp({
    name: 'producer',
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
  });
  await app.register(browserAccessPlugin, {
    ...(deps.corsOrigins ? { origins: deps.corsOrigins } : {}),
    methods: ['POST'],
    headers: ['content-type'],
  });
  await app.register(aboutPlugin, {
    service: 'producer',
    description:
      'Producer hospital: STOW-RS at POST /studies (protects and outsources instances); consultations through sessions at /session/*',
    checks: {
      database: () => sql`select 1`.execute(deps.database.db),
      trust: () => deps.trust.fresh(),
    },
  });
  await app.register(stowPlugin, {
    producer,
    stowTokenHash: deps.stowTokenHash,
    bodyLimit: deps.stowLimits?.body ?? 512 * 1024 * 1024,
    maxPart: deps.stowLimits?.part ?? 128 * 1024 * 1024,
    maxParts: deps.stowLimits?.parts ?? 4096,
  });
  await app.register(sessionPlugin, { server: deps.sessions });
  // Not `deps` itself: Fastify reads a plugin's `logLevel` and `prefix` from its options.
  const { logLevel: _level, corsOrigins: _origins, ...consultation } = deps;
  await app.register(consultationPlugin, consultation);
  await app.register(revocationPlugin, {
    db: deps.database.db,
    audit: deps.audit,
    resolveClinician: clinicianResolver(deps.trust),
    ...(deps.now ? { now: deps.now } : {}),
  });
  await app.register(producerAuditPlugin, {
    audit: deps.audit,
    policy: deps.policy,
    domain: deps.domain,
    db: deps.database.db,
    pseudonymKey: deps.pseudonymKey,
    ...(deps.now ? { now: deps.now } : {}),
  });
  return { app, producer };
}
