/**
 * The consumer hospital's operations for auditors: its audit trail (sign-ins, device enrollments and
 * revocations, role assignments), reached like the other parties' through an authenticated session
 * with the auditor's device certificate, decided by the policy and logged. The consumer service has no
 * session layer of its own otherwise, so this module brings one: a SessionServer with the hospital's
 * certified key, clients validated as devices of the trust group (with the live CRLs).
 */
import type { FastifyInstance } from 'fastify';
import type { SessionServer } from '../../core/session/protocol.ts';
import {
  AUDIT_DOMAIN,
  auditTrailOperations,
  type AuditAccessDeps,
} from '../common/audit-access.ts';
import { loadPolicyEngine } from '../common/engine.ts';
import { partySessions, type PartyRuntime } from '../common/party.ts';
import { sessionPlugin } from '../common/session.ts';
import type { LiveTrust } from '../common/trust.ts';
import type { ConsumerTables } from './app.ts';

export interface ConsumerAuditDeps extends Omit<AuditAccessDeps, 'domain'> {
  readonly sessions: SessionServer;
  readonly domain?: string;
}

/** Registers the session routes and the auditors' operations on the consumer's app. */
export async function registerConsumerAudit(
  app: FastifyInstance,
  deps: ConsumerAuditDeps,
): Promise<void> {
  const ops = auditTrailOperations({ ...deps, domain: deps.domain ?? AUDIT_DOMAIN });
  await app.register(sessionPlugin, {
    server: deps.sessions,
    operations: ops.operations,
    streams: ops.streams,
  });
}

/** What the consumer process needs for it: a session server over its live trust, the policy engine. */
export async function consumerAuditRuntime(
  rt: PartyRuntime<ConsumerTables>,
  trust: LiveTrust,
): Promise<Omit<ConsumerAuditDeps, 'audit'>> {
  return { sessions: partySessions(rt, trust), policy: await loadPolicyEngine(trust) };
}
