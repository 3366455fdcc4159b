/**
 * The audit witness, after Certificate Transparency's: each party sends its signed checkpoints (seq,
 * head hash, time) to a witness outside its own database, which accepts one only if it extends the
 * last it accepted — proven by the content digests of the records between them, from which it
 * recomputes the v2 chain without seeing any record — countersigns it and keeps it. A checkpoint that
 * does not extend is kept as signed evidence: `rolled-back` (a lower head than one already witnessed),
 * `forked` (another hash at a witnessed position), `inconsistent` (a head the digests do not lead to).
 *
 * Auditors fetch the witness's statement about a party (its first and latest witnessed checkpoints,
 * recent history and conflicts, signed over a nonce of theirs so it cannot be replayed) and require
 * the party's chain to reach the latest; `compareWithWitness` names every shortfall: `truncated`,
 * `rolled-back`, `forked`, `rewritten`. Pure: the consistency logic is unit-tested without a network.
 */
import { fromBase64Url, utf8, concatBytes } from '../bytes.ts';
import type { VerifyKey } from '../crypto/keys.ts';
import {
  canonicalJson,
  checkpointMessage,
  extendChain,
  GENESIS,
  type AuditRecord,
  type Checkpoint,
} from './record.ts';
import type { ChainBreak } from './verify.ts';

/** The most content digests one submission may carry; a longer gap is bridged by intermediate checkpoints. */
export const MAX_DIGESTS = 4096;
/** How many of the latest witnessed checkpoints, and of the conflicts, a statement lists. */
export const STATEMENT_HISTORY = 256;
export const STATEMENT_CONFLICTS = 64;

/**
 * What a party sends: a signed checkpoint and the content digests of records `from + 1 … seq`, where
 * `from` is the witness's latest checkpoint of the party as the party knows it (a checkpoint at or
 * below it carries no digests: it is judged against the latest, which the party must have learned).
 */
export interface Submission {
  readonly checkpoint: Checkpoint;
  /** The seq of the witness's latest checkpoint for this party, as the party believes it (0: none). */
  readonly from: number;
  readonly digests: readonly string[];
}

export interface Head {
  readonly seq: number;
  readonly hash: string;
}

/** A checkpoint the witness accepted: the party's signed checkpoint and when the witness saw it. */
export interface WitnessedCheckpoint extends Checkpoint {
  readonly witnessedAt: string;
}

export type ConflictKind = 'rolled-back' | 'forked' | 'inconsistent';

/** A checkpoint the witness refused as not extending its history: the party's own signed evidence. */
export interface Conflict {
  readonly kind: ConflictKind;
  readonly checkpoint: Checkpoint;
  readonly receivedAt: string;
  /** The witness's latest checkpoint for the party when it refused this one. */
  readonly witnessed: Head;
  readonly detail: string;
}

export type Judgement =
  /** Extends the latest (or is the first, `base` when taken on trust without digests). */
  | { readonly verdict: 'accept'; readonly base: boolean }
  /** The latest itself again. */
  | { readonly verdict: 'duplicate' }
  /** The party's idea of the latest is out of date: send the digests from `latest` instead. */
  | { readonly verdict: 'stale-range'; readonly latest: Head }
  /** Does not extend what was witnessed: kept as evidence. */
  | { readonly verdict: 'conflict'; readonly kind: ConflictKind; readonly detail: string }
  /** Malformed (wrong number of digests, too many). */
  | { readonly verdict: 'invalid'; readonly detail: string };

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Whether a submission extends the witness's latest checkpoint for the party. The first checkpoint of
 * a party is proven from the genesis when it comes with every digest (a chain of v2 records), and is
 * otherwise taken on trust as the base (a chain that began with v1 records, whose links need content).
 */
export function judgeSubmission(latest: Head | undefined, s: Submission): Judgement {
  const c = s.checkpoint;
  if (!Number.isSafeInteger(c.seq) || c.seq < 1 || !HEX64.test(c.hash))
    return { verdict: 'invalid', detail: 'a checkpoint names a record (seq ≥ 1) and its hash' };
  if (s.digests.length > MAX_DIGESTS)
    return { verdict: 'invalid', detail: `at most ${MAX_DIGESTS} digests per submission` };
  if (!latest) {
    if (s.from !== 0) return { verdict: 'stale-range', latest: { seq: 0, hash: GENESIS } };
    if (s.digests.length === 0) return { verdict: 'accept', base: true };
    if (s.digests.length !== c.seq)
      return { verdict: 'invalid', detail: `records 1…${c.seq} need ${c.seq} digests` };
    return extendChain({ seq: 0, hash: GENESIS }, s.digests) === c.hash
      ? { verdict: 'accept', base: false }
      : {
          verdict: 'invalid',
          detail: `the digests do not lead from the genesis to record ${c.seq}`,
        };
  }
  // The party must know what the witness saw before anything it sends is judged against it: a late
  // checkpoint of a replica that had not learned of a newer one is then not taken for a rollback.
  if (s.from !== latest.seq) return { verdict: 'stale-range', latest };
  if (c.seq < latest.seq)
    return {
      verdict: 'conflict',
      kind: 'rolled-back',
      detail: `checkpoint at record ${c.seq} after the witness had seen record ${latest.seq}`,
    };
  if (c.seq === latest.seq)
    return c.hash === latest.hash
      ? { verdict: 'duplicate' }
      : {
          verdict: 'conflict',
          kind: 'forked',
          detail: `a second checkpoint at record ${c.seq} with another hash than the witnessed one`,
        };
  if (s.digests.length !== c.seq - s.from)
    return {
      verdict: 'invalid',
      detail: `records ${s.from + 1}…${c.seq} need ${c.seq - s.from} digests, not ${s.digests.length}`,
    };
  return extendChain(latest, s.digests) === c.hash
    ? { verdict: 'accept', base: false }
    : {
        verdict: 'conflict',
        kind: 'inconsistent',
        detail: `record ${c.seq}'s hash does not extend the witnessed record ${latest.seq} through the digests given`,
      };
}

/** How the party stands with its witness (its health says so). */
export interface WitnessStatus {
  /**
   * `off` no witness; `current` every checkpoint witnessed; `pending` some queued; `unreachable` the
   * last attempt failed (the queue waits, appends go on); `refused` the witness refused a checkpoint
   * as not extending what it saw (this chain was rolled back, forked or rewritten: an alarm).
   */
  readonly state: 'off' | 'current' | 'pending' | 'unreachable' | 'refused';
  /** The latest checkpoint the witness accepted from this party, as far as it knows. */
  readonly witnessed?: { readonly seq: number; readonly witnessedAt?: string };
  readonly pending: number;
  /** Since when the witness cannot be reached. */
  readonly since?: string;
  readonly error?: string;
  readonly refused?: { readonly seq: number; readonly kind: string; readonly detail: string };
}

/** What the witness says of a party, signed over the auditor's nonce. */
export interface WitnessStatement {
  readonly party: string;
  readonly nonce: string;
  /** The witness's time. */
  readonly time: string;
  /** Its first checkpoint of the party: every record after it is v2 and signed. */
  readonly first: WitnessedCheckpoint | null;
  readonly latest: WitnessedCheckpoint | null;
  /** Its latest witnessed checkpoints, oldest first (at most STATEMENT_HISTORY, the latest included). */
  readonly history: readonly WitnessedCheckpoint[];
  /** The checkpoints it refused, oldest first (at most STATEMENT_CONFLICTS). */
  readonly conflicts: readonly Conflict[];
  /** Hex key id of the witness's (the authority's) certified key, and its signature. */
  readonly keyId: string;
  readonly signature: string;
}

/** What the witness signs: the canonical statement without its signature. */
export const statementMessage = (s: Omit<WitnessStatement, 'signature'>): Uint8Array =>
  concatBytes(utf8('ZTV witness statement v1\0'), utf8(canonicalJson(s)));

/** A verified statement, or the statements before and after reading a chain, merged. */
export interface WitnessView {
  readonly party: string;
  /** The latest witnessed checkpoint when the chain was read: the chain must reach it. */
  readonly required: WitnessedCheckpoint | null;
  readonly first: WitnessedCheckpoint | null;
  /** Every witnessed checkpoint known, by seq ascending. */
  readonly checkpoints: readonly WitnessedCheckpoint[];
  readonly conflicts: readonly Conflict[];
}

export type KeyResolver = (keyId: string) => Promise<VerifyKey | undefined>;

/**
 * Verifies a statement: the witness's signature with the authority's certified key, the nonce the
 * auditor sent, the party named, and the party's own signature on every checkpoint it lists (so that
 * the witness cannot invent a party's checkpoint). Returns why not, or the view.
 */
export async function verifyStatement(
  s: WitnessStatement,
  expect: { readonly party: string; readonly nonce: string },
  witnessKey: KeyResolver,
  partyKey: KeyResolver,
): Promise<{ ok: true; view: WitnessView } | { ok: false; reason: string }> {
  if (s.party !== expect.party)
    return { ok: false, reason: `the statement is about ${s.party}, not ${expect.party}` };
  if (s.nonce !== expect.nonce)
    return { ok: false, reason: 'the statement does not answer this request (nonce)' };
  const wk = await witnessKey(s.keyId);
  if (!wk) return { ok: false, reason: `the statement is signed by unknown key ${s.keyId}` };
  const { signature, ...body } = s;
  if (!(await wk.verify(fromBase64Url(signature), statementMessage(body))))
    return { ok: false, reason: "the witness's signature on the statement does not verify" };
  const all = [
    ...(s.first ? [s.first] : []),
    ...s.history,
    ...s.conflicts.map((c) => c.checkpoint),
  ];
  for (const c of all) {
    if (c.party !== s.party)
      return { ok: false, reason: `the statement lists a checkpoint of ${c.party}` };
    const pk = await partyKey(c.keyId);
    if (!pk || !(await pk.verify(fromBase64Url(c.signature), checkpointMessage(c))))
      return {
        ok: false,
        reason: `the witness lists a checkpoint at record ${c.seq} that ${s.party} did not sign`,
      };
  }
  return {
    ok: true,
    view: {
      party: s.party,
      required: s.latest,
      first: s.first,
      checkpoints: [...s.history].sort((a, b) => a.seq - b.seq),
      conflicts: s.conflicts,
    },
  };
}

/**
 * Merges the statement fetched before reading a chain (whose latest the chain must reach: anything
 * witnessed later may be newer than the read) with the one fetched after (more history, and the
 * conflicts the party's own checkpoint for this read may have raised).
 */
export function mergeViews(before: WitnessView, after?: WitnessView): WitnessView {
  if (!after) return before;
  const bySeq = new Map<number, WitnessedCheckpoint>();
  for (const c of [...before.checkpoints, ...after.checkpoints]) bySeq.set(c.seq, c);
  const conflicts = new Map<string, Conflict>();
  for (const c of [...before.conflicts, ...after.conflicts])
    conflicts.set(`${c.kind}:${c.checkpoint.seq}:${c.checkpoint.hash}`, c);
  return {
    party: before.party,
    required: before.required,
    first: before.first ?? after.first,
    checkpoints: [...bySeq.values()].sort((a, b) => a.seq - b.seq),
    conflicts: [...conflicts.values()],
  };
}

/** How far apart two replicas' clocks may be (records of one chain written by several processes). */
export const CLOCK_TOLERANCE_MS = 60_000;

const KIND_OF: Record<ConflictKind, ChainBreak['kind']> = {
  'rolled-back': 'rolled-back',
  forked: 'forked',
  inconsistent: 'forked',
};

/**
 * Every way a chain falls short of what the witness saw, by the record it concerns:
 * - `truncated`: a record the witness saw is missing (the chain ends before the latest witnessed
 *   checkpoint, or lacks a witnessed position);
 * - `rolled-back`: the party signed a lower head than one already witnessed, or a record at or
 *   before the latest witnessed position was written after that checkpoint (the chain was cut back
 *   and continued);
 * - `forked`: the party signed another head for a witnessed position, or one that does not extend
 *   the witnessed chain;
 * - `rewritten`: the chain's record at a witnessed position is not the one the witness saw, or a v1
 *   (unsigned) record follows the witness's first checkpoint, where every record is v2.
 */
export function compareWithWitness(records: readonly AuditRecord[], w: WitnessView): ChainBreak[] {
  const breaks: ChainBreak[] = [];
  const seen = new Set<string>();
  const add = (b: ChainBreak) => {
    const k = `${b.seq}:${b.kind}`;
    if (seen.has(k)) return;
    seen.add(k);
    breaks.push(b);
  };
  const bySeq = new Map<number, AuditRecord>();
  for (const r of records) bySeq.set(r.seq, r);
  const head = records.reduce((m, r) => Math.max(m, r.seq), 0);

  for (const c of w.checkpoints) {
    if (c.seq > head) break;
    const r = bySeq.get(c.seq);
    if (!r) {
      add({
        seq: c.seq,
        kind: 'truncated',
        detail: `the witness saw record ${c.seq} (checkpoint of ${c.time}), which the chain no longer has`,
      });
      continue;
    }
    if (r.hash === c.hash) continue;
    if (r.time > c.time)
      add({
        seq: c.seq,
        kind: 'rolled-back',
        detail: `record ${c.seq} was written at ${r.time}, after the witness had seen another record ${c.seq} (checkpoint of ${c.time}): the chain was cut back and continued`,
      });
    else
      add({
        seq: c.seq,
        kind: 'rewritten',
        detail: `record ${c.seq} is not the one the witness saw at ${c.witnessedAt}: the chain up to it was rewritten`,
      });
    break; // every later witnessed position differs too
  }

  const req = w.required;
  if (req && head < req.seq)
    add({
      seq: head + 1,
      kind: 'truncated',
      detail: `the witness saw the chain reach record ${req.seq} (checkpoint of ${req.time}); it ends at record ${head}: records ${head + 1}…${req.seq} are missing`,
    });
  if (req) {
    // Replicas' clocks may differ a little: only a record written clearly after the checkpoint counts.
    const bar = Date.parse(req.time) + CLOCK_TOLERANCE_MS;
    const later = records.find((r) => r.seq <= req.seq && Date.parse(r.time) > bar);
    if (later)
      add({
        seq: later.seq,
        kind: 'rolled-back',
        detail: `record ${later.seq} was written at ${later.time}, after the witness had seen the chain reach record ${req.seq} (${req.time}): the chain was cut back and continued`,
      });
  }

  for (const c of w.conflicts)
    add({
      seq: c.checkpoint.seq,
      kind: KIND_OF[c.kind],
      detail: `the ${w.party} signed a checkpoint at record ${c.checkpoint.seq} (${c.checkpoint.time}) that the witness refused at ${c.receivedAt}: ${c.detail}`,
    });

  if (w.first) {
    const unsigned = records.find((r) => r.seq > w.first!.seq && r.v !== 2);
    if (unsigned)
      add({
        seq: unsigned.seq,
        kind: 'rewritten',
        detail: `record ${unsigned.seq} is an unsigned v1 record after the witness's first checkpoint (record ${w.first.seq}), from which every record is signed`,
      });
  }
  return breaks.sort((a, b) => a.seq - b.seq);
}
