/**
 * Audit trails as parties serve them to auditors, and the merged trail of several parties: each
 * party's records with its own chain verification and signed checkpoints, merged in time order with
 * every chain break attached to the record it concerns. Also the pseudonymous references records use
 * (a study as a digest of its UID) and verification of a whole chain against the party's certified key,
 * so that an auditor need not take a service's word for its own integrity.
 */
import { toHex, utf8 } from '../bytes.ts';
import { keyIdOf, verifyKeyFromSpki, type VerifyKey } from '../crypto/keys.ts';
import type { PkiView } from '../pki/resolver.ts';
import { readOrganisation } from '../pki/extensions.ts';
import { OID } from '../pki/oids.ts';
import { sha256 } from '../crypto/hash.ts';
import { ZtvError } from '../errors.ts';
import type { Accepted } from '../schema.ts';
import { EVENTS, type AuditRecord, type Checkpoint, type EventId } from './record.ts';
import { verifyChain, type ChainBreak, type ChainReport } from './verify.ts';
import type { WitnessStatus, WitnessView } from './witness.ts';

/** The study reference records carry: SHA-256 of the Study Instance UID, 32 hex digits. */
export const studyRef = (studyInstanceUid: string): string =>
  toHex(sha256(utf8(studyInstanceUid))).slice(0, 32);

const HEX32 = { type: 'string', pattern: '^[0-9a-f]{32}$' } as const;
const TIME = {
  type: 'string',
  pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,3})?)?Z$',
} as const;

/**
 * What an auditor asks a party for, as the JSON schema properties the parties validate (the
 * `audit-trail` operation, `src/core/operations/audit.ts`). Object lists are alternatives (any of
 * them matches).
 */
export const TRAIL_FILTER = {
  /** Records whose actor is this clinician (or party). */
  clinician: { type: 'string', minLength: 1, maxLength: 64 },
  /** Patient pseudonyms (the producer maps a patient id to its pseudonym). */
  patients: { type: 'array', maxItems: 64, items: HEX32 },
  /** Study references (`studyRef`). */
  studies: { type: 'array', maxItems: 64, items: HEX32 },
  tickets: { type: 'array', maxItems: 256, items: HEX32 },
  images: { type: 'array', maxItems: 256, items: { type: 'string', pattern: '^[0-9a-f-]{36}$' } },
  event: { type: 'string', enum: Object.keys(EVENTS) as EventId[] },
  subtype: { type: 'string', pattern: '^[a-z][a-z-]{0,63}$' },
  /** ISO 8601 bounds on the record time, inclusive. */
  from: TIME,
  to: TIME,
  limit: { type: 'integer', minimum: 1, maximum: 10_000 },
  /** The whole chain, unfiltered (for independent verification). */
  chain: { type: 'boolean' },
} as const;

export type TrailFilter = Accepted<{
  type: 'object';
  additionalProperties: false;
  properties: typeof TRAIL_FILTER;
}>;

/** One party's answer: its records (filtered), its own verification of the whole chain, checkpoints. */
export interface PartyTrail {
  readonly party: string;
  readonly verification: ChainReport;
  readonly checkpoints: readonly Checkpoint[];
  readonly records: readonly AuditRecord[];
  /** Whether `records` is the whole chain (then it can be verified again locally). */
  readonly complete: boolean;
  readonly truncated: boolean;
  /** How the party stands with its witness after signing the checkpoint for this answer. */
  readonly witness?: WitnessStatus;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const B64URL = /^[A-Za-z0-9_-]*$/;
const str = (v: unknown): boolean => typeof v === 'string';
const optStr = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';
const seqOk = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/** What is wrong with a record's shape, or undefined when every field has its type. */
function recordFault(r: unknown): string | undefined {
  if (!isObject(r)) return 'is not an object';
  if (!seqOk(r.seq)) return 'has no sequence number';
  for (const k of ['time', 'party', 'event', 'subtype', 'action', 'prev', 'hash'] as const)
    if (!str(r[k])) return `has no ${k}`;
  if (typeof r.outcome !== 'number') return 'has no outcome';
  if (!isObject(r.actor) || !str(r.actor.id)) return 'has no actor';
  if (!Array.isArray(r.objects) || !r.objects.every((o) => isObject(o) && str(o.type) && str(o.id)))
    return 'has malformed objects';
  if (!isObject(r.details)) return 'has malformed details';
  if (!(r.v === undefined || r.v === null || Number.isSafeInteger(r.v))) return 'has a bad version';
  if (!optStr(r.keyId)) return 'has a bad key id';
  if (!(optStr(r.signature) && B64URL.test((r.signature as string | null) ?? '')))
    return 'has a malformed signature';
  return undefined;
}

function checkpointFault(c: unknown): string | undefined {
  if (!isObject(c)) return 'is not an object';
  if (!seqOk(c.seq)) return 'has no sequence number';
  for (const k of ['hash', 'time', 'party', 'keyId', 'signature'] as const)
    if (!str(c[k])) return `has no ${k}`;
  if (!B64URL.test(c.signature as string)) return 'has a malformed signature';
  return undefined;
}

/**
 * Reads a party's trail as it arrived (parsed JSON from the party, which the auditor does not
 * trust): every record and checkpoint must have the fields the verification reads, with their
 * types, or the whole answer is refused as malformed (a typed error) — a record that has its fields
 * but was altered is the verification's to find, with the record named.
 */
export function readTrail(doc: unknown): PartyTrail {
  const bad = (what: string): never => {
    throw new ZtvError('bad-input', `the audit trail is malformed: ${what}`);
  };
  if (!isObject(doc)) return bad('it is not an object');
  if (!str(doc.party)) bad('it names no party');
  if (typeof doc.complete !== 'boolean' || typeof doc.truncated !== 'boolean')
    bad('it does not say whether it is complete');
  const v = doc.verification;
  if (!isObject(v) || typeof v.ok !== 'boolean' || !Array.isArray(v.breaks))
    bad("the party's verification is missing");
  if (!Array.isArray(doc.records)) return bad('it has no records');
  if (!Array.isArray(doc.checkpoints)) return bad('it has no checkpoints');
  doc.records.forEach((r, i) => {
    const f = recordFault(r);
    if (f) bad(`record #${i + 1} ${f}`);
  });
  doc.checkpoints.forEach((c, i) => {
    const f = checkpointFault(c);
    if (f) bad(`checkpoint #${i + 1} ${f}`);
  });
  return doc as unknown as PartyTrail;
}

export interface MergedEntry {
  readonly party: string;
  readonly record: AuditRecord;
  /** Breaks of that party's chain at this record (empty when the record is sound). */
  readonly breaks: readonly ChainBreak[];
}

export interface MergedTrail {
  readonly entries: readonly MergedEntry[];
  /** Per party, its chain's verification; `ok` is true only when every chain verifies. */
  readonly chains: readonly ChainReport[];
  readonly ok: boolean;
}

const PARTY_ORDER = ['consumer', 'producer', 'cloud', 'authority'];

/** Merges parties' trails in time order (then party, then sequence), keeping each chain's breaks. */
export function mergeTrails(trails: readonly PartyTrail[]): MergedTrail {
  const entries: MergedEntry[] = [];
  for (const t of trails) {
    const breaks = new Map<number, ChainBreak[]>();
    for (const b of t.verification.breaks) breaks.set(b.seq, [...(breaks.get(b.seq) ?? []), b]);
    for (const r of t.records)
      entries.push({ party: t.party, record: r, breaks: breaks.get(r.seq) ?? [] });
  }
  const rank = (p: string) => {
    const i = PARTY_ORDER.indexOf(p);
    return i < 0 ? PARTY_ORDER.length : i;
  };
  entries.sort(
    (a, b) =>
      (a.record.time < b.record.time ? -1 : a.record.time > b.record.time ? 1 : 0) ||
      rank(a.party) - rank(b.party) ||
      a.record.seq - b.record.seq,
  );
  const chains = trails.map((t) => t.verification);
  return { entries, chains, ok: chains.every((c) => c.ok) };
}

/** The ticket ids and the actors that records name: how a patient's trail reaches other parties. */
export function referencesOf(records: readonly AuditRecord[]): {
  tickets: string[];
  clinicians: string[];
} {
  const tickets = new Set<string>();
  const clinicians = new Set<string>();
  for (const r of records)
    for (const o of r.objects)
      if (o.type === 'ticket') {
        tickets.add(o.id);
        if (r.actor.role) clinicians.add(r.actor.id);
      }
  return { tickets: [...tickets], clinicians: [...clinicians] };
}

/**
 * A resolver of a party's checkpoint keys from the federation's PKI: the organisation certificate whose
 * key id is the checkpoint's, and whose organisation extension names that party's role.
 */
export function checkpointKeys(
  view: PkiView,
  party: string,
): (keyId: string) => Promise<VerifyKey | undefined> {
  return async (keyId) => {
    for (const cert of view.organisations) {
      const spki = new Uint8Array(cert.publicKey.rawData);
      if (toHex(keyIdOf(spki)) !== keyId) continue;
      const ext = cert.getExtension(OID.organisationExtension);
      const org = ext ? readOrganisation(ext.value) : undefined;
      if (org?.role !== party) return undefined;
      return verifyKeyFromSpki(spki);
    }
    return undefined;
  };
}

/**
 * Verifies a complete chain again, here, with the party's key from the PKI, and against the witness's
 * view when one was fetched (or says why none could be).
 */
export async function verifyTrail(
  view: PkiView,
  t: PartyTrail,
  witness?: WitnessView | { readonly unavailable: string },
): Promise<ChainReport> {
  return verifyChain(t.party, t.records, t.checkpoints, checkpointKeys(view, t.party), witness);
}
