/**
 * Verification of an audit chain: sequence without gaps, each record's link to the one before, each
 * record's own hash, each checkpoint's signature and agreement with the chain. Reports every break
 * with the exact record it concerns.
 */
import { fromBase64Url } from '../bytes.ts';
import type { VerifyKey } from '../crypto/keys.ts';
import {
  checkpointMessage,
  GENESIS,
  recordHash,
  type AuditRecord,
  type Checkpoint,
} from './record.ts';

export type BreakKind =
  | 'sequence-gap'
  | 'broken-link'
  | 'hash-mismatch'
  | 'checkpoint-signature'
  | 'checkpoint-mismatch'
  | 'checkpoint-unknown-key';

export interface ChainBreak {
  readonly seq: number;
  readonly kind: BreakKind;
  readonly detail: string;
}

export interface ChainReport {
  readonly ok: boolean;
  readonly party: string;
  readonly records: number;
  readonly head?: { seq: number; hash: string };
  readonly checkpoints: number;
  readonly breaks: readonly ChainBreak[];
}

export async function verifyChain(
  party: string,
  records: readonly AuditRecord[],
  checkpoints: readonly Checkpoint[],
  resolveKey: (keyId: string) => Promise<VerifyKey | undefined>,
): Promise<ChainReport> {
  const breaks: ChainBreak[] = [];
  let prevHash = GENESIS;
  let expected = 1;
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
    const { hash: _h, ...rest } = r;
    const computed = recordHash(rest);
    if (computed !== r.hash)
      breaks.push({
        seq: r.seq,
        kind: 'hash-mismatch',
        detail: `record ${r.seq} was rewritten: its content no longer matches its hash`,
      });
    bySeq.set(r.seq, r);
    prevHash = r.hash;
    expected = r.seq + 1;
  }
  for (const c of checkpoints) {
    const key = await resolveKey(c.keyId);
    if (!key) {
      breaks.push({
        seq: c.seq,
        kind: 'checkpoint-unknown-key',
        detail: `checkpoint at ${c.seq} is signed by unknown key ${c.keyId}`,
      });
      continue;
    }
    const ok = await key.verify(fromBase64Url(c.signature), checkpointMessage(c));
    if (!ok)
      breaks.push({
        seq: c.seq,
        kind: 'checkpoint-signature',
        detail: `the signature of checkpoint ${c.seq} does not verify`,
      });
    const r = bySeq.get(c.seq);
    if (!r || r.hash !== c.hash)
      breaks.push({
        seq: c.seq,
        kind: 'checkpoint-mismatch',
        detail: `checkpoint ${c.seq} vouches for a record hash the chain does not have`,
      });
  }
  breaks.sort((a, b) => a.seq - b.seq);
  const last = records.at(-1);
  return {
    ok: breaks.length === 0,
    party,
    records: records.length,
    ...(last ? { head: { seq: last.seq, hash: last.hash } } : {}),
    checkpoints: checkpoints.length,
    breaks,
  };
}
