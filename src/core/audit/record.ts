/**
 * Audit records: what every party logs (requests, decisions, tickets, redemptions, traces, security
 * alerts), in an append-only chain where each record carries the hash of the one before, with signed
 * checkpoints. Events are those of DICOM PS3.15 A.5 (IHE ATNA), refined by a platform subtype. Actors
 * and objects are pseudonymous; details may hold neither keys nor secrets (checked on append).
 */
import { concatBytes, toHex, u64be, utf8 } from '../bytes.ts';
import { sha256 } from '../crypto/hash.ts';
import { ZtvError } from '../errors.ts';

/** DICOM audit event IDs (DCM code system). */
export const EVENTS = {
  '110101': 'Audit Log Used',
  '110103': 'DICOM Instances Accessed',
  '110106': 'Export',
  '110107': 'Import',
  '110112': 'Query',
  '110113': 'Security Alert',
  '110114': 'User Authentication',
} as const;
export type EventId = keyof typeof EVENTS;

export type Action = 'C' | 'R' | 'U' | 'D' | 'E';
/** 0 success, 4 minor failure, 8 serious failure, 12 major failure. */
export type Outcome = 0 | 4 | 8 | 12;

export interface AuditActor {
  /** Pseudonymous or organisational identifier (a clinician id, a device thumbprint, a service). */
  readonly id: string;
  readonly role?: string;
  readonly organisation?: string;
  readonly device?: string;
}

export interface AuditObject {
  readonly type:
    | 'image'
    | 'study'
    | 'series'
    | 'patient'
    | 'ticket'
    | 'certificate'
    | 'policy'
    | 'session'
    | 'record';
  readonly id: string;
}

export interface AuditEntry {
  readonly event: EventId;
  /** The platform's refinement: ticket-issued, redemption, trace-inserted, policy-decision, … */
  readonly subtype: string;
  readonly action: Action;
  readonly outcome: Outcome;
  readonly actor: AuditActor;
  readonly objects: readonly AuditObject[];
  readonly details: Readonly<Record<string, unknown>>;
}

export interface AuditRecord extends AuditEntry {
  readonly seq: number;
  /** ISO 8601 UTC with milliseconds. */
  readonly time: string;
  readonly party: string;
  /** Hash of the previous record (64 zeros for the first). */
  readonly prev: string;
  readonly hash: string;
}

export const GENESIS = '0'.repeat(64);

/** Canonical JSON: object keys sorted (RFC 8785 ordering for our ASCII keys), no whitespace. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ZtvError('bad-input', 'audit values must be finite numbers');
    return JSON.stringify(v);
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  throw new ZtvError('bad-input', `audit values cannot be ${typeof v}`);
}

const SECRET_NAMES =
  /^(key|keys|secret|password|passwd|privatekey|imagekey|kek|token|pseudonymkey)$/i;

/** Refuses details that look like they carry a secret: named like one, or holding key material. */
export function assertNoSecrets(v: unknown, path = 'details'): void {
  if (typeof v === 'string') {
    if (/PRIVATE KEY|BEGIN [A-Z ]*KEY/.test(v))
      throw new ZtvError('bad-input', `${path} looks like key material`);
    return;
  }
  if (Array.isArray(v)) return v.forEach((x, i) => assertNoSecrets(x, `${path}[${i}]`));
  if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (SECRET_NAMES.test(k)) throw new ZtvError('bad-input', `${path}.${k} must not be logged`);
      assertNoSecrets(x, `${path}.${k}`);
    }
}

/** The hash of a record: over its canonical form without the hash itself. */
export function recordHash(r: Omit<AuditRecord, 'hash'>): string {
  const { seq, time, party, prev, event, subtype, action, outcome, actor, objects, details } = r;
  const body = canonicalJson({
    seq,
    time,
    party,
    prev,
    event,
    subtype,
    action,
    outcome,
    actor,
    objects,
    details,
  });
  return toHex(sha256(utf8('ZTV audit record v1\n'), utf8(body)));
}

/** Builds the next record of a chain. */
export function nextRecord(
  entry: AuditEntry,
  head: { seq: number; hash: string },
  party: string,
  now: Date,
): AuditRecord {
  assertNoSecrets(entry.details);
  if (!(entry.event in EVENTS))
    throw new ZtvError('bad-input', `unknown audit event ${entry.event}`);
  const base = { ...entry, seq: head.seq + 1, time: now.toISOString(), party, prev: head.hash };
  return { ...base, hash: recordHash(base) };
}

export interface Checkpoint {
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  readonly party: string;
  /** Hex key id of the party's signing key. */
  readonly keyId: string;
  /** Base64url ECDSA/Ed25519 signature. */
  readonly signature: string;
}

/** What a checkpoint signs: the party, the position and head hash of its chain, and the time. */
export const checkpointMessage = (c: Omit<Checkpoint, 'signature' | 'keyId'>): Uint8Array =>
  concatBytes(
    utf8(`ZTV audit checkpoint v1\0${c.party}\0`),
    u64be(c.seq),
    utf8(`\0${c.hash}\0${c.time}`),
  );
