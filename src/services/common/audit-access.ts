/**
 * Auditors' access to a party's audit chain, shared by the producer, the cloud and the consumer
 * hospital: sealed session operations whose caller is a clinician's device certificate with the auditor
 * role, each access decided by the policy (`read-audit` on the `audit-trail` view, purpose `HOPERAT`) and
 * itself appended to the chain (DICOM 110101 Audit Log Used) before anything is read; refusals are
 * security alerts. The trail is streamed (it can exceed one packet): the party's verification of its
 * whole chain with every break named, a fresh signed checkpoint of the head, and the records the filter
 * selects — or the whole chain, for an auditor who verifies it again with the party's certified key.
 */
import type { FastifyInstance } from 'fastify';
import type { AuditObject, AuditRecord } from '../../core/audit/record.ts';
import type { PartyTrail, TrailFilter } from '../../core/audit/trail.ts';
import { utf8 } from '../../core/bytes.ts';
import { auditTrail as auditTrailContract, type TrailBody } from '../../core/operations/audit.ts';
import { OID } from '../../core/pki/oids.ts';
import { enforce, type DecisionRecord, type PolicyEngine } from '../policy/engine.ts';
import type { AuditQuery, AuditStore } from '../storage/audit-store.ts';
import { OperationError, type OperationContext } from './session.ts';

export interface AuditAccessDeps {
  readonly audit: AuditStore;
  readonly policy: PolicyEngine;
  /** The policy domain that decides auditors' access (see docs/audit.md). */
  readonly domain: string;
  readonly now?: () => number;
}

/**
 * The domain whose policy decides auditors' access on every party: the producer hospital's, the one
 * whose AUDIT and REVIEW rules exist (with the federation's separation-of-duty prohibitions it
 * inherits). The federation's own policy has no read-audit permission yet; see docs/audit.md.
 */
export const AUDIT_DOMAIN = OID.domainProducer;

/** The auditor as the audit records name them: from the device certificate of the session. */
export const auditorOf = (ctx: OperationContext) => ({
  id: ctx.client.attributes.clinicianId ?? 'unknown',
  role: ctx.client.attributes.role,
  organisation: ctx.client.attributes.hospital,
  device: ctx.client.thumbprint,
});

/**
 * Decides and logs one auditor access. The policy's `log-request` pre-obligation appends the access
 * record (110101) before the caller reads anything; without that obligation it is appended anyway.
 * A refusal is appended as a security alert and thrown as a 403.
 */
export function auditGate(deps: AuditAccessDeps) {
  const now = () => new Date(deps.now?.() ?? Date.now());
  return async (
    ctx: OperationContext,
    purpose: string,
    access: {
      readonly operation: string;
      readonly activity?: string;
      readonly resource?: { kind: string; requester?: string };
      readonly objects?: readonly AuditObject[];
      readonly details?: Readonly<Record<string, unknown>>;
    },
  ): Promise<DecisionRecord> => {
    const actor = auditorOf(ctx);
    const objects = access.objects ?? [];
    if (ctx.client.attributes.kind !== 'device')
      throw new OperationError(403, 'denied', 'auditors sign in with a device certificate');
    const decision = await deps.policy.decide(deps.domain, {
      principal: {
        id: actor.id,
        organization: actor.organisation ?? '',
        roles: [actor.role ?? ''],
      },
      activity: access.activity ?? 'read-audit',
      resource: access.resource ?? { kind: 'audit-trail' },
      context: { purpose, time: now() },
    });
    let logged = false;
    const log = async () => {
      logged = true;
      await deps.audit.append({
        event: '110101',
        subtype: access.operation,
        action: 'R',
        outcome: 0,
        actor,
        objects,
        details: {
          purpose,
          rules: decision.rules,
          ...access.details,
        },
      });
    };
    const enforced = await enforce(decision, { 'log-request': log });
    if (enforced.decision.decision !== 'allow') {
      const d = enforced.decision;
      await deps.audit.append({
        event: '110113',
        subtype: 'audit-access-denied',
        action: 'E',
        outcome: 4,
        actor,
        objects,
        details: { operation: access.operation, purpose, rules: d.rules, errors: d.errors },
      });
      throw new OperationError(
        403,
        'denied',
        `${access.operation} denied: ${[...d.errors, ...d.rules.map((r) => `rule ${r}`)].join('; ') || 'no rule permits it'}`,
      );
    }
    if (!logged && access.activity === undefined) await log();
    return decision;
  };
}

/** The records a filter selects: the union over its object lists, within actor, event and time. */
export async function selectRecords(
  audit: AuditStore,
  f: TrailFilter,
): Promise<{ records: AuditRecord[]; truncated: boolean }> {
  const limit = f.limit ?? 10_000;
  const base: AuditQuery = {
    ...(f.clinician ? { actor: f.clinician } : {}),
    ...(f.event ? { event: f.event } : {}),
    ...(f.subtype ? { subtype: f.subtype } : {}),
    ...(f.from ? { from: f.from } : {}),
    ...(f.to ? { to: f.to } : {}),
    limit: limit + 1,
  };
  const objects: { type: string; id: string }[] = [
    ...(f.patients ?? []).map((id) => ({ type: 'patient', id })),
    ...(f.studies ?? []).map((id) => ({ type: 'study', id })),
    ...(f.tickets ?? []).map((id) => ({ type: 'ticket', id })),
    ...(f.images ?? []).map((id) => ({ type: 'image', id })),
  ];
  const found = new Map<number, AuditRecord>();
  if (objects.length === 0) for (const r of await audit.query(base)) found.set(r.seq, r);
  for (const o of objects)
    for (const r of await audit.query({ ...base, object: o })) found.set(r.seq, r);
  const records = [...found.values()].sort((a, b) => a.seq - b.seq);
  return { records: records.slice(0, limit), truncated: records.length > limit };
}

/** The whole answer to `audit-trail`, once the access is allowed and logged. */
export async function partyTrail(audit: AuditStore, f: TrailFilter): Promise<PartyTrail> {
  // Sign the head first and have it witnessed, so the answer carries a checkpoint covering every
  // record it returns and the witness has seen it before the auditor asks (docs/audit.md §3).
  const witness = await audit.checkpointWitnessed();
  const verification = await audit.verify();
  const checkpoints = await audit.checkpoints();
  if (f.chain) {
    const records = await audit.all();
    return {
      party: audit.party,
      verification,
      checkpoints,
      records,
      complete: true,
      truncated: false,
      witness,
    };
  }
  const { records, truncated } = await selectRecords(audit, f);
  return {
    party: audit.party,
    verification,
    checkpoints,
    records,
    complete: false,
    truncated,
    witness,
  };
}

/** A JSON document as a stream of chunks (the session layer seals them packet by packet). */
export async function* jsonChunks(value: unknown, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  const bytes = utf8(JSON.stringify(value));
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

/** The filter as the access record logs it: pseudonymous references and bounds only. */
const filterSummary = (f: TrailBody): Record<string, unknown> => {
  const { purpose: _p, ...rest } = f;
  return rest;
};

/** Answers `audit-trail` with this filter: decided, logged, then streamed as one JSON document. */
export async function auditTrail(
  deps: AuditAccessDeps,
  f: TrailBody,
  ctx: OperationContext,
): Promise<AsyncIterable<Uint8Array>> {
  await auditGate(deps)(ctx, f.purpose, {
    operation: f.chain ? 'audit-chain-read' : 'audit-trail-read',
    details: { filter: filterSummary(f) },
  });
  return jsonChunks(await partyTrail(deps.audit, f));
}

/** The operation every party offers auditors: `audit-trail` (streamed), on its session layer. */
export async function auditTrailPlugin(app: FastifyInstance, deps: AuditAccessDeps): Promise<void> {
  app.sessionOperations.stream(auditTrailContract, (body, ctx) => auditTrail(deps, body, ctx));
}
