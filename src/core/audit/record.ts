/**
 * Audit records: what every party logs (requests, decisions, tickets, redemptions, traces, security
 * alerts), in an append-only chain where each record carries the hash of the one before, with signed
 * checkpoints. Events are those of DICOM PS3.15 A.5 (IHE ATNA), refined by a platform subtype. Actors
 * and objects are pseudonymous; details may hold neither keys nor secrets (checked on append).
 *
 * Two record versions share a chain. v1 (the first databases): hash = SHA-256 over the canonical
 * record, prev included. v2 (every record appended since): hash = SHA-256(seq ‖ prev ‖ content
 * digest), so that a witness given the content digests alone can recompute the chain between two
 * checkpoints, and the party signs each record's hash with its certified key, so that no one without
 * that key can rewrite a record and recompute its link.
 */
import { concatBytes, fromHex, toBase64Url, toHex, u64be, utf8 } from '../bytes.ts';
import type { SigningKey } from '../crypto/keys.ts';
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
  /** 2 for a linked-digest record signed by the party; absent for a v1 record. */
  readonly v?: 2;
  /** v2: hex key id of the party key that signed the record's hash, and that signature (base64url). */
  readonly keyId?: string;
  readonly signature?: string;
}

export const GENESIS = '0'.repeat(64);

/** The record version every party appends today. */
export const RECORD_VERSION = 2;

const HASH_HEX = /^[0-9a-f]{64}$/;

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

type Content = Pick<
  AuditRecord,
  'time' | 'party' | 'event' | 'subtype' | 'action' | 'outcome' | 'actor' | 'objects' | 'details'
>;

/** What a record says, apart from its place in the chain. */
const contentOf = (r: Content): Content => {
  const { time, party, event, subtype, action, outcome, actor, objects, details } = r;
  return { time, party, event, subtype, action, outcome, actor, objects, details };
};

/**
 * The content digest of a v2 record: everything it says except its place in the chain. What a party
 * sends its witness instead of the record (no content leaves the party).
 */
export const contentDigest = (r: Content): string =>
  toHex(sha256(utf8('ZTV audit content v2\n'), utf8(canonicalJson(contentOf(r)))));

/**
 * The v2 link: SHA-256 over the position, the previous hash and the content digest. A malformed
 * `prev` or digest (a rewritten row) links to nothing: the empty string, which no hash equals.
 */
export function linkHash(seq: number, prev: string, digest: string): string {
  if (!HASH_HEX.test(prev) || !HASH_HEX.test(digest) || !Number.isSafeInteger(seq) || seq < 1)
    return '';
  return toHex(sha256(utf8('ZTV audit link v2\n'), u64be(seq), fromHex(prev), fromHex(digest)));
}

/** Extends a chain from `{seq, hash}` over the content digests of the records after it (v2 links). */
export function extendChain(
  from: { readonly seq: number; readonly hash: string },
  digests: readonly string[],
): string {
  let hash = from.hash;
  for (let i = 0; i < digests.length; i++) hash = linkHash(from.seq + 1 + i, hash, digests[i]!);
  return hash;
}

/** What a party signs for each v2 record: its name, the record's position and hash. */
export const recordSignatureMessage = (party: string, seq: number, hash: string): Uint8Array =>
  concatBytes(
    utf8(`ZTV audit record signature v2\0${party}\0`),
    u64be(seq),
    HASH_HEX.test(hash) ? fromHex(hash) : utf8(hash),
  );

/** The hash of a record: v2 links its content digest; v1 hashes its canonical form, prev included. */
export function recordHash(r: Omit<AuditRecord, 'hash' | 'keyId' | 'signature'>): string {
  if (r.v === RECORD_VERSION) return linkHash(r.seq, r.prev, contentDigest(r));
  const body = canonicalJson({ ...contentOf(r), seq: r.seq, prev: r.prev });
  return toHex(sha256(utf8('ZTV audit record v1\n'), utf8(body)));
}

/** Builds the next record of a chain (v2), to be signed (`signRecord`) before it is stored. */
export function nextRecord(
  entry: AuditEntry,
  head: { seq: number; hash: string },
  party: string,
  now: Date,
): AuditRecord {
  assertNoSecrets(entry.details);
  if (!(entry.event in EVENTS))
    throw new ZtvError('bad-input', `unknown audit event ${entry.event}`);
  const base = {
    ...entry,
    seq: head.seq + 1,
    time: now.toISOString(),
    party,
    prev: head.hash,
    v: RECORD_VERSION,
  } as const;
  return { ...base, hash: recordHash(base) };
}

/** A v2 record with the party's signature over its position and hash. */
export async function signRecord(r: AuditRecord, signer: SigningKey): Promise<AuditRecord> {
  const signature = await signer.sign(recordSignatureMessage(r.party, r.seq, r.hash));
  return { ...r, keyId: signer.publicKey.keyIdHex, signature: toBase64Url(signature) };
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

/** The witness's receipt for a checkpoint it accepted: its key, when, and its signature. */
export interface Cosignature {
  readonly keyId: string;
  readonly witnessedAt: string;
  readonly signature: string;
}

/** What a checkpoint signs: the party, the position and head hash of its chain, and the time. */
export const checkpointMessage = (c: Omit<Checkpoint, 'signature' | 'keyId'>): Uint8Array =>
  concatBytes(
    utf8(`ZTV audit checkpoint v1\0${c.party}\0`),
    u64be(c.seq),
    utf8(`\0${c.hash}\0${c.time}`),
  );

/** What the witness signs when it accepts a checkpoint: the checkpoint and when it saw it. */
export const cosignatureMessage = (
  c: Omit<Checkpoint, 'signature' | 'keyId'>,
  witnessedAt: string,
): Uint8Array =>
  concatBytes(utf8('ZTV witness cosignature v1\0'), checkpointMessage(c), utf8(`\0${witnessedAt}`));
