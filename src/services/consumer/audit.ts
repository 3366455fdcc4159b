/**
 * The consumer hospital's operations for auditors: its audit trail (sign-ins, device enrollments and
 * revocations, role assignments), reached like the other parties' through an authenticated session
 * with the auditor's device certificate, decided by the policy and logged. The consumer service has no
 * session layer of its own otherwise, so this module brings one: a SessionServer with the hospital's
 * certified key, clients validated as devices of the trust group (with the live CRLs).
 */
import type { FastifyInstance } from 'fastify';
import { deviceValidator } from '../../core/session/peers.ts';
import { SessionServer } from '../../core/session/protocol.ts';
import {
  AUDIT_DOMAIN,
  auditTrailOperations,
  type AuditAccessDeps,
} from '../common/audit-access.ts';
import { urls, type FederationConfig } from '../common/config.ts';
import { loadPolicyEngine } from '../common/engine.ts';
import type { PartyRuntime } from '../common/party.ts';
import { sessionPlugin } from '../common/session.ts';
import { LiveTrust } from '../common/trust.ts';
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

/** What the consumer process needs for it: live trust, a session server and the policy engine. */
export async function consumerAuditRuntime(
  c: FederationConfig,
  rt: PartyRuntime<ConsumerTables>,
): Promise<Omit<ConsumerAuditDeps, 'audit'>> {
  const u = urls(c);
  const trust = new LiveTrust(
    rt.pki,
    { cert: rt.keys.certPem, key: rt.keys.keyPem },
    { authority: u.authority, deviceCrls: [`${u.consumer}/crl.pem`] },
  );
  const sessions = new SessionServer({
    credentials: { signer: rt.keys.signer, chain: [rt.keys.certPem] },
    validateClient: async (chain) => {
      await trust.fresh().catch(() => undefined);
      return deviceValidator(() => trust.view())(chain);
    },
    onRefusal: (reason, message) =>
      void rt.audit.append({
        event: '110113',
        subtype: 'session-refused',
        action: 'E',
        outcome: 8,
        actor: { id: 'unknown' },
        objects: [],
        details: { reason, message },
      }),
  });
  return { sessions, policy: await loadPolicyEngine(trust) };
}
