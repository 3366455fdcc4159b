/**
 * The producer hospital's operations for auditors: resolve a trace found in a leaked image to the
 * ticket that carried it (requester, hospital, device, time, purpose, the rules that allowed it,
 * break-glass or not); map a patient id the auditor types to the pseudonym the records use; the audit
 * trail, filterable by patient id too; break-glass accesses awaiting review, and the review itself —
 * decided by the REVIEW rule under separation of duty (SOD-DYNAMIC: no one reviews their own), which
 * discharges the break-glass post-obligation. Every call is decided by the policy and logged first.
 */
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { studyRef } from '../../core/audit/trail.ts';
import { patientPseudonym } from '../../core/crypto/pseudonym.ts';
import {
  auditPseudonym,
  auditTrace,
  breakGlassPending,
  breakGlassReview,
  producerAuditTrail,
} from '../../core/operations/audit.ts';
import { auditGate, auditorOf, auditTrail, type AuditAccessDeps } from '../common/audit-access.ts';
import { OperationError } from '../common/session.ts';
import type { DecisionRecord } from '../policy/engine.ts';
import type { ProducerTables } from './schema.ts';

export interface ProducerAuditDeps extends AuditAccessDeps {
  readonly db: Kysely<ProducerTables>;
  readonly pseudonymKey: Uint8Array;
}

type TicketRow = ProducerTables['tickets'];

const decisionOf = (row: TicketRow): DecisionRecord => JSON.parse(row.decision) as DecisionRecord;

/** The auditors' operations of the producer hospital, on its session layer. */
export async function producerAuditPlugin(
  app: FastifyInstance,
  deps: ProducerAuditDeps,
): Promise<void> {
  const ops = app.sessionOperations;
  const gate = auditGate(deps);
  const db = deps.db;
  const pseudo = (patient: string) => patientPseudonym(deps.pseudonymKey, patient);
  const now = () => deps.now?.() ?? Date.now();

  // The trail also takes patient ids and Study Instance UIDs, mapped here to what records carry.
  ops.stream(producerAuditTrail, ({ patientIds, studyUids, ...rest }, ctx) =>
    auditTrail(
      deps,
      {
        ...rest,
        ...(patientIds?.length
          ? { patients: [...(rest.patients ?? []), ...patientIds.map(pseudo)] }
          : {}),
        ...(studyUids?.length
          ? { studies: [...(rest.studies ?? []), ...studyUids.map(studyRef)] }
          : {}),
      },
      ctx,
    ),
  );

  ops.handle(auditTrace, async (body, ctx) => {
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
  });

  ops.handle(auditPseudonym, async (body, ctx) => {
    const p = pseudo(body.patient);
    // The patient id itself is never logged: only the pseudonym the auditor now searches for.
    await gate(ctx, body.purpose, {
      operation: 'patient-pseudonym',
      objects: [{ type: 'patient', id: p }],
    });
    return { pseudonym: p };
  });

  ops.handle(breakGlassPending, async (body, ctx) => {
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
  });

  ops.handle(breakGlassReview, async (body, ctx) => {
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
  });
}
