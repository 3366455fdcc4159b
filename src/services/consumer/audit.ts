/**
 * The consumer hospital's operations for auditors: its audit trail (sign-ins, device enrollments and
 * revocations, role assignments), reached like the other parties' through an authenticated session
 * with the auditor's device certificate, decided by the policy and logged. The consumer service has no
 * session layer of its own otherwise, so this plugin brings one: a SessionServer with the hospital's
 * certified key, clients validated as devices of the trust group (with the live CRLs).
 */
import type { FastifyInstance } from 'fastify';
import type { SessionServer } from '../../core/session/protocol.ts';
import { AUDIT_DOMAIN, auditTrailPlugin } from '../common/audit-access.ts';
import { sessionPlugin } from '../common/session.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import type { AuditStore } from '../storage/audit-store.ts';

export interface ConsumerAuditOptions {
  readonly sessions: SessionServer;
  readonly policy: PolicyEngine;
  readonly audit: AuditStore;
  readonly domain?: string;
  readonly now?: () => number;
}

/** The session routes and the auditors' `audit-trail`, on the consumer's app. */
export async function consumerAuditPlugin(
  app: FastifyInstance,
  deps: ConsumerAuditOptions,
): Promise<void> {
  await app.register(sessionPlugin, { server: deps.sessions });
  await app.register(auditTrailPlugin, {
    audit: deps.audit,
    policy: deps.policy,
    domain: deps.domain ?? AUDIT_DOMAIN,
    ...(deps.now ? { now: deps.now } : {}),
  });
}
