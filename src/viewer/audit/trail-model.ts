/**
 * The audit trail as the auditor view shows it: the query (a patient, a study, a clinician or a
 * ticket) validated before anything is sent; the merged trail of the producer, the cloud and the
 * consumer as rows, each with the breaks that this browser's own verification of the party's whole
 * chain (hash chain and checkpoints, with the party's certified key) found at that record — exact seq
 * and kind; per party, a summary of its chain, the breaks outside the selection, and whether the party's
 * verification of itself disagrees; and the shown selection as DICOM audit messages and CSV. Details are
 * shown as an export carries them (identifiers the policy saw replaced). Pure: tested without a browser.
 */
import type { MergedFilter } from '../../core/audit/client.ts';
import { toCsv } from '../../core/audit/csv.ts';
import { toDicomAudit } from '../../core/audit/dicom.ts';
import { canonicalJson, EVENTS, type AuditRecord } from '../../core/audit/record.ts';
import { exportable } from '../../core/audit/redact.ts';
import type { MergedTrail } from '../../core/audit/trail.ts';
import { HL7_PURPOSES_OF_USE } from '../../core/policy/purposes.ts';
import {
  chainState,
  verifiedComplete,
  type ChainBreak,
  type ChainReport,
} from '../../core/audit/verify.ts';

export type TrailKind = 'patient' | 'study' | 'clinician' | 'ticket';

export const TRAIL_KINDS: readonly { readonly id: TrailKind; readonly label: string }[] = [
  { id: 'patient', label: 'Patient ID' },
  { id: 'study', label: 'Study Instance UID' },
  { id: 'clinician', label: 'Clinician' },
  { id: 'ticket', label: 'Ticket' },
];

export class QueryError extends Error {
  override readonly name = 'QueryError';
}

/** What the auditor typed, checked as the services' schemas will check it, as a merged-trail filter. */
export function trailFilter(kind: TrailKind, typed: string): MergedFilter {
  const v = typed.trim();
  if (!v) throw new QueryError('Type what the trail is about.');
  switch (kind) {
    case 'patient':
      // The producer maps it to its pseudonym; the typed id itself is never logged or sent elsewhere.
      if (v.length > 64 || [...v].some((c) => c < ' ' || c === '\u007f'))
        throw new QueryError('A patient ID has at most 64 printable characters.');
      return { patientId: v };
    case 'study':
      if (v.length > 64 || !/^[0-9]+(\.[0-9]+)*$/.test(v))
        throw new QueryError('A Study Instance UID is digits and dots, at most 64 characters.');
      return { studyUid: v };
    case 'clinician':
      if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(v))
        throw new QueryError('A clinician is named by their account id (e.g. dr.bob).');
      return { clinician: v };
    case 'ticket':
      if (!/^[0-9a-f]{32}$/i.test(v)) throw new QueryError('A ticket id is 32 hexadecimal digits.');
      return { tickets: [v.toLowerCase()] };
  }
}

/**
 * The outcome as an auditor reads it. The parties log a refusal (a policy's deny, a wrong password, a
 * refused reading of the trail) as DICOM's "minor failure" (4), and a request stopped at the edge as
 * "serious failure" (8) with a Security Alert; the DICOM words stay in the exports.
 */
export function outcomeText(r: Pick<AuditRecord, 'outcome' | 'event'>): string {
  switch (r.outcome) {
    case 0:
      return 'succeeded';
    case 4:
      return 'refused';
    case 8:
      return r.event === '110113' ? 'refused (security alert)' : 'failed';
    default:
      return 'failed (major)';
  }
}

/** One readable field of a record's details. */
export interface DetailField {
  readonly label: string;
  readonly value: string;
}

const asRecord = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

const listText = (v: unknown): string | undefined =>
  Array.isArray(v) && v.length ? v.map(String).join(', ') : undefined;

const purposeText = (code: string): string =>
  HL7_PURPOSES_OF_USE[code] ? `${code} (${HL7_PURPOSES_OF_USE[code]})` : code;

/**
 * The fields an auditor reads in a record's details (as exports carry them): the decision, its rules,
 * the purpose, a break-glass justification, the reasons of a refusal, and the other facts a record
 * states (counts, times, obligations). What is not recognised stays in the raw details.
 */
export function detailFields(details: Readonly<Record<string, unknown>>): DetailField[] {
  const out: DetailField[] = [];
  const add = (label: string, value: string | undefined) => {
    if (value !== undefined && value !== '') out.push({ label, value });
  };
  const d = asRecord(details.decision);
  const request = asRecord(d?.request);
  const context = asRecord(request?.context);
  if (typeof d?.decision === 'string')
    add('Decision', d.decision === 'allow' ? 'allowed' : 'refused');
  add('Rules', listText(d?.rules) ?? listText(details.rules));
  const purpose = context?.purpose ?? details.purpose;
  if (typeof purpose === 'string') add('Purpose', purposeText(purpose));
  if (typeof details.operation === 'string') add('Operation', details.operation);
  if (typeof details.emergency === 'boolean')
    add('Emergency', details.emergency ? 'yes (break the glass)' : 'no');
  const justification = context?.justification ?? details.justification;
  if (typeof justification === 'string') add('Justification', justification);
  add(
    'Reasons',
    [
      ...(Array.isArray(d?.errors) ? d.errors : []),
      ...(Array.isArray(d?.refusedStatements) ? d.refusedStatements : []),
    ]
      .map(String)
      .join('; '),
  );
  if (typeof request?.resource === 'string') add('Resource', request.resource);
  if (typeof details.reason === 'string') add('Reason', details.reason);
  if (typeof details.message === 'string') add('Message', details.message);
  if (typeof details.images === 'number') add('Images', String(details.images));
  if (typeof details.listed === 'number') add('Studies listed', String(details.listed));
  add('Obligations pending', listText(details.obligationsPending));
  if (typeof details.expiresAt === 'number')
    add('Expires', new Date(details.expiresAt).toISOString());
  if (typeof details.outcome === 'string') add('Review', details.outcome);
  return out;
}

export interface TrailRow {
  /** `party:seq`, unique in a trail. */
  readonly key: string;
  readonly party: string;
  readonly seq: number;
  readonly time: string;
  readonly event: string;
  readonly eventName: string;
  readonly subtype: string;
  /** In an auditor's words ("refused", not DICOM's "minor failure"). */
  readonly outcome: string;
  /** The actor, their hospital by its name in the trust group. */
  readonly actor: string;
  /** The objects other than images. */
  readonly objects: string;
  /** The image ids a record names (a trace record names every image of its ticket). */
  readonly images: readonly string[];
  /** The details as readable fields. */
  readonly fields: readonly DetailField[];
  /** Canonical JSON of the details as an export carries them. */
  readonly details: string;
  /** This record's breaks, from this browser's verification of the party's chain. */
  readonly breaks: readonly ChainBreak[];
  readonly record: AuditRecord;
}

export interface ChainSummary {
  readonly party: string;
  /** No break, and the chain reaches the latest checkpoint the witness saw (verified here). */
  readonly ok: boolean;
  readonly records: number;
  readonly checkpoints: number;
  readonly head?: { readonly seq: number; readonly hash: string };
  readonly breaks: readonly ChainBreak[];
  /** Breaks at records the selection does not show. */
  readonly outside: readonly ChainBreak[];
  /** Whether this is the verification here (true) or only the party's word (no local report). */
  readonly local: boolean;
  /** The party's verification of itself says otherwise than the verification here. */
  readonly disagrees: boolean;
  readonly text: string;
}

export interface TrailView {
  readonly rows: readonly TrailRow[];
  readonly chains: readonly ChainSummary[];
  /** Every chain verifies, here. */
  readonly ok: boolean;
}

/** Organisation ids (trust-group member ids) to their names. */
export type OrganisationNames = ReadonlyMap<string, string>;

/** The names of the trust group's members, by id. */
export const organisationNames = (members: readonly { id: string; name: string }[]) =>
  new Map(members.map((m) => [m.id, m.name])) as OrganisationNames;

const actorText = (r: AuditRecord, names: OrganisationNames): string =>
  [
    r.actor.id,
    r.actor.role ? `(${r.actor.role})` : '',
    r.actor.organisation ? `· ${names.get(r.actor.organisation) ?? r.actor.organisation}` : '',
  ]
    .filter(Boolean)
    .join(' ');

const breakKey = (party: string, seq: number) => `${party}:${seq}`;

/**
 * Rows and chain summaries from a merged trail and this browser's verification of each party's whole
 * chain (`local`, from `AuditorClient.verifyChain`). A party without a local report is summarised by
 * its own verification, and says so.
 */
export function trailView(
  merged: MergedTrail,
  local: readonly ChainReport[],
  names: OrganisationNames = new Map(),
): TrailView {
  const localOf = new Map(local.map((c) => [c.party, c]));
  const remoteOf = new Map(merged.chains.map((c) => [c.party, c]));
  const parties = [...new Set([...merged.chains.map((c) => c.party), ...localOf.keys()])];
  const breaksAt = new Map<string, ChainBreak[]>();
  for (const p of parties) {
    const report = localOf.get(p) ?? remoteOf.get(p)!;
    for (const b of report.breaks) {
      const k = breakKey(p, b.seq);
      breaksAt.set(k, [...(breaksAt.get(k) ?? []), b]);
    }
  }
  const rows: TrailRow[] = merged.entries.map(({ party, record: r }) => ({
    key: breakKey(party, r.seq),
    party,
    seq: r.seq,
    time: r.time,
    event: r.event,
    eventName: EVENTS[r.event] ?? r.event,
    subtype: r.subtype,
    outcome: outcomeText(r),
    actor: actorText(r, names),
    objects: r.objects
      .filter((o) => o.type !== 'image')
      .map((o) => `${o.type}:${o.id}`)
      .join(' '),
    images: r.objects.filter((o) => o.type === 'image').map((o) => o.id),
    fields: detailFields(exportable(r.details).details),
    details: canonicalJson(exportable(r.details).details),
    breaks: breaksAt.get(breakKey(party, r.seq)) ?? [],
    record: r,
  }));
  const shown = new Set(rows.map((r) => r.key));
  const chains: ChainSummary[] = parties.map((p) => {
    const here = localOf.get(p);
    const remote = remoteOf.get(p);
    const report = here ?? remote!;
    const outside = report.breaks.filter((b) => !shown.has(breakKey(p, b.seq)));
    const disagrees = !!here && !!remote && here.ok !== remote.ok;
    const head = `${p}: ${report.records} records, ${report.checkpoints} signed checkpoint(s)`;
    const by = here
      ? `verified here with the ${p}'s certified key`
      : `as the ${p} reports it (not verified here)`;
    const state = report.ok
      ? chainState(report)
      : `${report.breaks.length} break(s): ${report.breaks.map((b) => `record ${b.seq} ${b.kind}`).join(', ')}`;
    return {
      party: p,
      ok: here ? verifiedComplete(here) : report.ok,
      records: report.records,
      checkpoints: report.checkpoints,
      ...(report.head ? { head: report.head } : {}),
      breaks: report.breaks,
      outside,
      local: !!here,
      disagrees,
      text: `${head}, ${by}: ${state}${disagrees ? ` — the ${p} says of itself: ${remote!.ok ? 'intact' : 'broken'}` : ''}`,
    };
  });
  return { rows, chains, ok: chains.every((c) => c.ok && c.local) };
}

/** The rows of the parties the auditor keeps on screen. */
export const selectRows = (view: TrailView, parties: ReadonlySet<string>): readonly TrailRow[] =>
  view.rows.filter((r) => parties.has(r.party));

export interface ExportFile {
  readonly name: string;
  readonly type: string;
  readonly text: string;
}

/** A file name without anything the auditor typed: the kind of selection and the time of the export. */
const stamp = (now: Date): string =>
  now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/** The shown selection as DICOM audit messages (PS3.15 A.5, one document per line) or CSV. */
export function exportSelection(
  rows: readonly TrailRow[],
  format: 'xml' | 'csv',
  kind: TrailKind,
  now = new Date(),
): ExportFile {
  const records = rows.map((r) => r.record);
  const name = `ztv-audit-${kind}-${stamp(now)}.${format}`;
  return format === 'xml'
    ? { name, type: 'application/xml', text: toDicomAudit(records) }
    : { name, type: 'text/csv', text: toCsv(records) };
}
