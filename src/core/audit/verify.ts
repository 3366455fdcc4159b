/**
 * Verification of an audit chain: sequence without gaps, each record's link to the one before, each
 * record's own hash, each v2 record's signature by the party's certified key, each checkpoint's
 * signature and agreement with the chain — and, given the witness's view, that the chain reaches the
 * latest witnessed checkpoint (`compareWithWitness`). Reports every break with the exact record it
 * concerns. Without a witness the report says so: a chain cut after its last record, rolled back or
 * restored from an older copy cannot be told from an intact one by its own content.
 */
import { fromBase64Url } from '../bytes.ts';
import type { VerifyKey } from '../crypto/keys.ts';
import {
  checkpointMessage,
  GENESIS,
  recordHash,
  recordSignatureMessage,
  RECORD_VERSION,
  type AuditRecord,
  type Checkpoint,
} from './record.ts';
import { compareWithWitness, type WitnessView } from './witness.ts';

export type BreakKind =
  | 'sequence-gap'
  | 'broken-link'
  | 'hash-mismatch'
  | 'checkpoint-signature'
  | 'checkpoint-mismatch'
  | 'checkpoint-unknown-key'
  | 'rewritten'
  | 'truncated'
  | 'rolled-back'
  | 'forked';

export interface ChainBreak {
  readonly seq: number;
  readonly kind: BreakKind;
  readonly detail: string;
}

/** What the comparison with the witness found, or why there was none. */
export type WitnessFinding =
  | {
      readonly consulted: true;
      /** The latest checkpoint the witness had seen when the chain was read (none: never witnessed). */
      readonly latest?: {
        readonly seq: number;
        readonly hash: string;
        readonly time: string;
        readonly witnessedAt: string;
      };
      /** The chain has the latest witnessed record, with the witnessed hash. */
      readonly reached: boolean;
      /** Records after the latest witnessed checkpoint (not yet witnessed: a later check covers them). */
      readonly unwitnessed: number;
      /** Checkpoints the witness refused from this party. */
      readonly conflicts: number;
    }
  | { readonly consulted: false; readonly reason: string };

export interface ChainReport {
  /** No break. Whether the chain is also proven complete is `witness.consulted`. */
  readonly ok: boolean;
  readonly party: string;
  readonly records: number;
  readonly head?: { seq: number; hash: string };
  readonly checkpoints: number;
  readonly breaks: readonly ChainBreak[];
  /** Absent in reports that never asked a witness (a party's own view of itself). */
  readonly witness?: WitnessFinding;
}

/**
 * Intact and reaching the latest witnessed checkpoint: what an auditor may call verified. A chain with
 * records the witness never saw a checkpoint of is not: nothing bounds what may have been cut from it.
 */
export const verifiedComplete = (r: ChainReport): boolean =>
  r.ok &&
  r.witness?.consulted === true &&
  r.witness.reached &&
  (!!r.witness.latest || r.records === 0);

/** One line of a report: what the chain is and whether it verified (the CLI and the viewer say it so). */
export function chainState(r: ChainReport): string {
  const w = r.witness;
  const witness = !w
    ? ''
    : !w.consulted
      ? `; NOT compared with the witness (${w.reason}): a truncated, rolled-back or restored chain cannot be ruled out`
      : !w.latest
        ? '; NOT witnessed: the witness has seen no checkpoint of it'
        : `; reaches the witnessed record ${w.latest.seq}${w.unwitnessed ? ` (${w.unwitnessed} record(s) after it not yet witnessed)` : ''}`;
  if (r.ok) return `chain intact${r.head ? ` up to record ${r.head.seq}` : ''}${witness}`;
  return `${r.breaks.length} BREAK(S)${w && !w.consulted ? witness : ''}`;
}

/** Runs checks a few hundred at a time (WebCrypto verifies on its thread pool), results in input order. */
async function inBatches<T>(
  items: readonly T[],
  f: (x: T) => Promise<ChainBreak[]>,
  n = 256,
): Promise<ChainBreak[]> {
  const out: ChainBreak[] = [];
  for (let i = 0; i < items.length; i += n)
    for (const found of await Promise.all(items.slice(i, i + n).map(f))) out.push(...found);
  return out;
}

export async function verifyChain(
  party: string,
  records: readonly AuditRecord[],
  checkpoints: readonly Checkpoint[],
  resolveKey: (keyId: string) => Promise<VerifyKey | undefined>,
  witness?: WitnessView | { readonly unavailable: string },
): Promise<ChainReport> {
  const keys = new Map<string, Promise<VerifyKey | undefined>>();
  const key = (id: string) => {
    if (!keys.has(id)) keys.set(id, resolveKey(id));
    return keys.get(id)!;
  };
  const breaks: ChainBreak[] = [];
  let prevHash = GENESIS;
  let expected = 1;
  let signedFrom: number | undefined;
  const bySeq = new Map<number, AuditRecord>();
  for (const r of records) {
    if (r.seq !== expected)
      breaks.push({
        seq: r.seq,
        kind: 'sequence-gap',
        detail: `record ${r.seq} follows record ${expected - 1}: records ${expected}…${r.seq - 1} are missing`,
      });
    if (r.prev !== prevHash)
      breaks.push({
        seq: r.seq,
        kind: 'broken-link',
        detail: `record ${r.seq} does not point to the hash of the record before it`,
      });
    const { hash: _h, keyId: _k, signature: _s, ...rest } = r;
    if (recordHash(rest) !== r.hash)
      breaks.push({
        seq: r.seq,
        kind: 'hash-mismatch',
        detail: `record ${r.seq} was rewritten: its content no longer matches its hash`,
      });
    if (r.v === RECORD_VERSION) signedFrom ??= r.seq;
    else if (signedFrom !== undefined)
      breaks.push({
        seq: r.seq,
        kind: 'rewritten',
        detail: `record ${r.seq} is an unsigned v1 record after record ${signedFrom}, from which the party signs every record`,
      });
    bySeq.set(r.seq, r);
    prevHash = r.hash;
    expected = r.seq + 1;
  }

  const view = witness && 'checkpoints' in witness ? witness : undefined;
  const req = view?.required ?? undefined;
  if (view) breaks.push(...compareWithWitness(records, view));
  // Records up to a witnessed checkpoint the chain reaches unbroken are exactly those the witness saw:
  // their signatures add nothing to the witness's, so only the later ones are checked (the cost of a
  // signature check, ~0.3 ms, would otherwise grow with the whole chain at every read).
  const reached =
    !!req && bySeq.get(req.seq)?.hash === req.hash && !breaks.some((b) => b.seq <= req.seq);
  const sigFrom = reached ? req.seq + 1 : 1;
  breaks.push(
    ...(await inBatches(
      records.filter((r) => r.v === RECORD_VERSION && r.seq >= sigFrom),
      async (r): Promise<ChainBreak[]> => {
        const k = r.keyId ? await key(r.keyId) : undefined;
        const ok =
          !!k &&
          !!r.signature &&
          (await k.verify(
            fromBase64Url(r.signature),
            recordSignatureMessage(party, r.seq, r.hash),
          ));
        if (ok) return [];
        const detail = !r.signature
          ? `record ${r.seq} carries no signature of the ${party}`
          : !k
            ? `record ${r.seq} is signed by key ${r.keyId}, not the ${party}'s certified key`
            : `record ${r.seq}'s signature does not verify: it was rewritten without the ${party}'s key`;
        return [{ seq: r.seq, kind: 'rewritten', detail }];
      },
    )),
  );

  // Checkpoints in the party's own database: the signatures of those after the witnessed one still
  // say something; every one must vouch for a hash the chain has.
  breaks.push(
    ...(await inBatches(checkpoints, async (c): Promise<ChainBreak[]> => {
      const found: ChainBreak[] = [];
      if (!reached || c.seq > req.seq) {
        const k = await key(c.keyId);
        if (!k)
          return [
            {
              seq: c.seq,
              kind: 'checkpoint-unknown-key',
              detail: `checkpoint at ${c.seq} is signed by unknown key ${c.keyId}`,
            },
          ];
        if (!(await k.verify(fromBase64Url(c.signature), checkpointMessage(c))))
          found.push({
            seq: c.seq,
            kind: 'checkpoint-signature',
            detail: `the signature of checkpoint ${c.seq} does not verify`,
          });
      }
      const r = bySeq.get(c.seq);
      if (!r || r.hash !== c.hash)
        found.push({
          seq: c.seq,
          kind: 'checkpoint-mismatch',
          detail: `checkpoint ${c.seq} vouches for a record hash the chain does not have`,
        });
      return found;
    })),
  );

  const seen = new Set<string>();
  const unique = breaks.filter((b) => {
    const k = `${b.seq}:${b.kind}:${b.detail}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
  unique.sort((a, b) => a.seq - b.seq);
  const last = records.at(-1);
  const finding: WitnessFinding | undefined = view
    ? {
        consulted: true,
        ...(req
          ? {
              latest: {
                seq: req.seq,
                hash: req.hash,
                time: req.time,
                witnessedAt: req.witnessedAt,
              },
            }
          : {}),
        reached: !req || bySeq.get(req.seq)?.hash === req.hash,
        unwitnessed: records.filter((r) => r.seq > (req?.seq ?? 0)).length,
        conflicts: view.conflicts.length,
      }
    : witness && 'unavailable' in witness
      ? { consulted: false, reason: witness.unavailable }
      : undefined;
  return {
    ok: unique.length === 0,
    party,
    records: records.length,
    ...(last ? { head: { seq: last.seq, hash: last.hash } } : {}),
    checkpoints: checkpoints.length,
    breaks: unique,
    ...(finding ? { witness: finding } : {}),
  };
}
