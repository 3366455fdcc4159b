/**
 * The producer hospital's operations for auditors: resolve a trace found in a leaked image to the
 * ticket that carried it (requester, hospital, device, time, purpose, the rules that allowed it,
 * break-glass or not); map a patient id the auditor types to the pseudonym the records use; the audit
 * trail, filterable by patient id too; break-glass accesses awaiting review, and the review itself —
 * decided by the REVIEW rule under separation of duty (SOD-DYNAMIC: no one reviews their own), which
 * discharges the break-glass post-obligation. Every call is decided by the policy and logged first.
 */
import type { PendingReview, TraceResolution } from '../../core/audit/client.ts';
import type { Kysely } from 'kysely';
import { studyRef } from '../../core/audit/trail.ts';
import { toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import {
  auditGate,
  auditorOf,
  auditTrailOperations,
  PURPOSE,
  TRAIL_SCHEMA,
  type AuditAccessDeps,
  type TrailBody,
} from '../common/audit-access.ts';
import {
  OperationError,
  type Operation,
  type OperationContext,
  type StreamOperation,
} from '../common/session.ts';
import type { DecisionRecord } from '../policy/engine.ts';
import type { ProducerTables } from './app.ts';

export interface ProducerAuditDeps extends AuditAccessDeps {
  readonly db: Kysely<ProducerTables>;
  readonly pseudonymKey: Uint8Array;
}

/** The keyed patient pseudonym the producer's records carry (the same derivation as consultations). */
export const patientPseudonym = (key: Uint8Array, patient: string): string =>
  toHex(sha256(key, utf8(`patient\0${patient}`))).slice(0, 32);

type TicketRow = ProducerTables['tickets'];

const decisionOf = (row: TicketRow): DecisionRecord => JSON.parse(row.decision) as DecisionRecord;

const REVIEW_OUTCOMES = ['justified', 'unjustified'] as const;

export function producerAuditOperations(deps: ProducerAuditDeps): {
  operations: Record<string, Operation>;
  streams: Record<string, StreamOperation>;
} {
  const gate = auditGate(deps);
  const db = deps.db;
  const pseudo = (patient: string) => patientPseudonym(deps.pseudonymKey, patient);
  const now = () => deps.now?.() ?? Date.now();

  // The trail also takes patient ids and Study Instance UIDs, mapped here to what records carry.
  const trail = auditTrailOperations(deps, async (body) => {
    const b = body as TrailBody & { patientIds?: string[]; studyUids?: string[] };
    const { patientIds, studyUids, ...rest } = b;
    return {
      ...rest,
      ...(patientIds?.length
        ? { patients: [...(rest.patients ?? []), ...patientIds.map(pseudo)] }
        : {}),
      ...(studyUids?.length
        ? { studies: [...(rest.studies ?? []), ...studyUids.map(studyRef)] }
        : {}),
    };
  });
  const trailSchema = {
    ...TRAIL_SCHEMA,
    properties: {
      ...TRAIL_SCHEMA.properties,
      patientIds: {
        type: 'array',
        maxItems: 64,
        items: { type: 'string', minLength: 1, maxLength: 64 },
      },
      studyUids: {
        type: 'array',
        maxItems: 64,
        items: { type: 'string', pattern: '^[0-9.]{1,64}$' },
      },
    },
  };

  const resolveTrace = async (
    body: { purpose: string; trace: string },
    ctx: OperationContext,
  ): Promise<TraceResolution> => {
    const row = await db
      .selectFrom('tickets')
      .selectAll()
      .where('trace', '=', body.trace)
      .executeTakeFirst();
    await gate(ctx, body.purpose, {
      operation: 'trace-resolved',
      objects: row ? [{ type: 'ticket', id: row.tid }] : [],
      details: { trace: body.trace, known: !!row },
    });
    if (!row) return { trace: body.trace, known: false };
    const d = decisionOf(row);
    return {
      trace: body.trace,
      known: true,
      ticket: {
        tid: row.tid,
        requester: row.clinician,
        hospital: row.hospital,
        device: row.device,
        issuedAt: row.issued_at,
        expiresAt: new Date(Number(row.expires_at)).toISOString(),
        purpose: row.purpose,
        rules: d.rules,
        obligations: d.obligations.map((o) => `${o.id}:${o.timing}`),
        breakGlass: row.emergency === 1,
        review: row.review,
        reviewer: row.reviewer,
        reviewedAt: row.reviewed_at,
        patient: pseudo(row.patient_id),
        study: studyRef(row.study_uid),
        images: (JSON.parse(row.images) as string[]).length,
      },
    };
  };

  const pseudonym = async (body: { purpose: string; patient: string }, ctx: OperationContext) => {
    const p = pseudo(body.patient);
    // The patient id itself is never logged: only the pseudonym the auditor now searches for.
    await gate(ctx, body.purpose, {
      operation: 'patient-pseudonym',
      objects: [{ type: 'patient', id: p }],
    });
    return { pseudonym: p };
  };

  const pending = async (
    body: { purpose: string },
    ctx: OperationContext,
  ): Promise<{ pending: PendingReview[] }> => {
    await gate(ctx, body.purpose, { operation: 'break-glass-pending-read' });
    const rows = await db
      .selectFrom('tickets')
      .selectAll()
      .where('review', '=', 'pending')
      .orderBy('issued_at')
      .execute();
    return {
      pending: rows.map((r) => ({
        tid: r.tid,
        requester: r.clinician,
        hospital: r.hospital,
        device: r.device,
        issuedAt: r.issued_at,
        purpose: r.purpose,
        justification: r.justification ?? '',
        rules: decisionOf(r).rules,
        patient: pseudo(r.patient_id),
        study: studyRef(r.study_uid),
      })),
    };
  };

  const review = async (
    body: { purpose: string; ticket: string; outcome: (typeof REVIEW_OUTCOMES)[number] },
    ctx: OperationContext,
  ) => {
    const row = await db
      .selectFrom('tickets')
      .selectAll()
      .where('tid', '=', body.ticket)
      .executeTakeFirst();
    if (!row || row.emergency !== 1)
      throw new OperationError(404, 'unknown-access', 'no break-glass access with this ticket');
    const decision = await gate(ctx, body.purpose, {
      operation: 'break-glass-review',
      activity: 'review-break-glass',
      resource: { kind: 'break-glass', requester: row.clinician },
      objects: [{ type: 'ticket', id: row.tid }],
    });
    const reviewer = auditorOf(ctx);
    const at = new Date(now()).toISOString();
    // Only a pending access can be reviewed, once: the update is conditional.
    const done = await db
      .updateTable('tickets')
      .set({ review: body.outcome, reviewer: reviewer.id, reviewed_at: at })
      .where('tid', '=', row.tid)
      .where('review', '=', 'pending')
      .executeTakeFirst();
    if (Number(done.numUpdatedRows) !== 1)
      throw new OperationError(
        409,
        'already-reviewed',
        `this access was already reviewed (${row.review}${row.reviewer ? ` by ${row.reviewer}` : ''})`,
      );
    await deps.audit.append({
      event: '110113',
      subtype: 'break-glass-reviewed',
      action: 'U',
      outcome: 0,
      actor: reviewer,
      objects: [{ type: 'ticket', id: row.tid }],
      details: {
        outcome: body.outcome,
        requester: row.clinician,
        obligation: 'break-glass-review',
        rules: decision.rules,
      },
    });
    return { ticket: row.tid, review: body.outcome, reviewer: reviewer.id, reviewedAt: at };
  };

  return {
    operations: {
      'audit-trace': {
        schema: {
          type: 'object',
          required: ['purpose', 'trace'],
          additionalProperties: false,
          properties: { purpose: PURPOSE, trace: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
        },
        handler: resolveTrace as never,
      },
      'audit-pseudonym': {
        schema: {
          type: 'object',
          required: ['purpose', 'patient'],
          additionalProperties: false,
          properties: {
            purpose: PURPOSE,
            patient: { type: 'string', minLength: 1, maxLength: 64 },
          },
        },
        handler: pseudonym as never,
      },
      'break-glass-pending': {
        schema: {
          type: 'object',
          required: ['purpose'],
          additionalProperties: false,
          properties: { purpose: PURPOSE },
        },
        handler: pending as never,
      },
      'break-glass-review': {
        schema: {
          type: 'object',
          required: ['purpose', 'ticket', 'outcome'],
          additionalProperties: false,
          properties: {
            purpose: PURPOSE,
            ticket: { type: 'string', pattern: '^[0-9a-f]{32}$' },
            outcome: { type: 'string', enum: REVIEW_OUTCOMES },
          },
        },
        handler: review as never,
      },
    },
    streams: {
      'audit-trail': { schema: trailSchema, handler: trail.streams['audit-trail']!.handler },
    },
  };
}
