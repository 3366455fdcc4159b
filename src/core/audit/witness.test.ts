// The witness's consistency logic, without a network: which checkpoints extend what it saw (proven
// by content digests alone), which are rolled back, forked or inconsistent; a statement that is not
// the witness's, not for this nonce, or that invents a party's checkpoint, is refused; and a chain is
// compared with what the witness saw — every shortfall named by the record it concerns: truncated,
// rolled back (cut and continued), forked, rewritten (at a witnessed position, or a record re-hashed
// without the party's key), or an unsigned record after the witness's first checkpoint.
import { beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url } from '../bytes.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../crypto/keys.ts';
import {
  checkpointMessage,
  contentDigest,
  extendChain,
  GENESIS,
  nextRecord,
  recordHash,
  signRecord,
  type AuditEntry,
  type AuditRecord,
  type Checkpoint,
} from './record.ts';
import { verifyChain } from './verify.ts';
import {
  compareWithWitness,
  judgeSubmission,
  MAX_DIGESTS,
  mergeViews,
  statementMessage,
  verifyStatement,
  type WitnessedCheckpoint,
  type WitnessStatement,
  type WitnessView,
} from './witness.ts';

let party: SigningKey;
let witness: SigningKey;
let other: SigningKey;
const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

const entry = (n: number): AuditEntry => ({
  event: '110112',
  subtype: 'request-logged',
  action: 'R',
  outcome: 0,
  actor: { id: `dr.${n}` },
  objects: [],
  details: { n },
});

/** A producer chain of `n` signed v2 records, one a second from T0 (or from `start`). */
async function chain(n: number, from: AuditRecord[] = [], start = T0): Promise<AuditRecord[]> {
  const out = [...from];
  for (let i = 0; i < n; i++) {
    const head = out.at(-1) ?? { seq: 0, hash: GENESIS };
    out.push(
      await signRecord(
        nextRecord(entry(head.seq + 1), head, 'producer', new Date(start + out.length * 1000)),
        party,
      ),
    );
  }
  return out;
}

async function checkpoint(r: { seq: number; hash: string }, time: string): Promise<Checkpoint> {
  const base = { seq: r.seq, hash: r.hash, time, party: 'producer' };
  return {
    ...base,
    keyId: party.publicKey.keyIdHex,
    signature: toBase64Url(await party.sign(checkpointMessage(base))),
  };
}

const witnessedAt = async (r: AuditRecord): Promise<WitnessedCheckpoint> => ({
  ...(await checkpoint(r, r.time)),
  witnessedAt: r.time,
});

const viewOf = (seen: WitnessedCheckpoint[], extra: Partial<WitnessView> = {}): WitnessView => ({
  party: 'producer',
  required: seen.at(-1) ?? null,
  first: seen[0] ?? null,
  checkpoints: seen,
  conflicts: [],
  ...extra,
});

const kinds = (breaks: readonly { seq: number; kind: string }[]) =>
  breaks.map((b) => `${b.seq}:${b.kind}`);

beforeAll(async () => {
  party = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  witness = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  other = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
});

describe('v2 records', () => {
  it('link through content digests: the chain is recomputed from digests alone', async () => {
    const records = await chain(5);
    expect(records.every((r) => r.v === 2 && r.signature)).toBe(true);
    expect(extendChain({ seq: 0, hash: GENESIS }, records.map(contentDigest))).toBe(
      records[4]!.hash,
    );
    expect(extendChain(records[1]!, records.slice(2).map(contentDigest))).toBe(records[4]!.hash);
    // One digest changed (a record's content), or one dropped: another head.
    const digests = records.map(contentDigest);
    digests[2] = contentDigest({ ...records[2]!, details: { n: 99 } });
    expect(extendChain({ seq: 0, hash: GENESIS }, digests)).not.toBe(records[4]!.hash);
    expect(extendChain(records[1]!, records.slice(3).map(contentDigest))).not.toBe(
      records[4]!.hash,
    );
  });

  it('a record rewritten and re-hashed with recordHash (no key) no longer verifies', async () => {
    const records = await chain(4);
    const { hash: _h, keyId: _k, signature: _s, ...rest } = records[3]!;
    const forged = { ...rest, details: { n: 'mallory' } };
    records[3] = { ...records[3]!, ...forged, hash: recordHash(forged) };
    const r = await verifyChain('producer', records, [], async (id) =>
      id === party.publicKey.keyIdHex ? party.publicKey : undefined,
    );
    expect(kinds(r.breaks)).toEqual(['4:rewritten']);
    expect(r.breaks[0]!.detail).toContain("rewritten without the producer's key");
    // Downgraded to an unsigned v1 record instead: named too.
    const { v: _v, keyId: _k2, signature: _s2, ...v1 } = records[3]!;
    records[3] = { ...v1, hash: recordHash(v1) };
    const d = await verifyChain('producer', records, [], async () => party.publicKey);
    expect(kinds(d.breaks)).toEqual(['4:rewritten']);
    expect(d.breaks[0]!.detail).toContain('unsigned v1 record after record 1');
  });
});

describe('judgeSubmission', () => {
  it('accepts a checkpoint that extends the latest, proven by the digests between them', async () => {
    const r = await chain(10);
    const latest = { seq: 4, hash: r[3]!.hash };
    const digests = r.slice(4).map(contentDigest);
    expect(
      judgeSubmission(latest, {
        checkpoint: await checkpoint(r[9]!, r[9]!.time),
        from: 4,
        digests,
      }),
    ).toEqual({ verdict: 'accept', base: false });
    // The first: proven from the genesis with every digest, or taken as the base without them.
    expect(
      judgeSubmission(undefined, {
        checkpoint: await checkpoint(r[9]!, r[9]!.time),
        from: 0,
        digests: r.map(contentDigest),
      }),
    ).toEqual({ verdict: 'accept', base: false });
    expect(
      judgeSubmission(undefined, {
        checkpoint: await checkpoint(r[9]!, r[9]!.time),
        from: 0,
        digests: [],
      }),
    ).toEqual({ verdict: 'accept', base: true });
  });

  it('refuses what does not extend: rolled back, forked, inconsistent; asks again when out of date', async () => {
    const r = await chain(10);
    const latest = { seq: 8, hash: r[7]!.hash };
    const cp = async (i: number) => checkpoint(r[i]!, r[i]!.time);
    expect(
      judgeSubmission(latest, { checkpoint: await cp(4), from: 8, digests: [] }),
    ).toMatchObject({ verdict: 'conflict', kind: 'rolled-back' });
    // A party (a replica) that has not learned of the latest yet is told it, not taken for a rollback.
    expect(judgeSubmission(latest, { checkpoint: await cp(4), from: 2, digests: [] })).toEqual({
      verdict: 'stale-range',
      latest,
    });
    const forked = await checkpoint({ seq: 8, hash: 'ab'.repeat(32) }, r[7]!.time);
    expect(judgeSubmission(latest, { checkpoint: forked, from: 8, digests: [] })).toMatchObject({
      verdict: 'conflict',
      kind: 'forked',
    });
    expect(judgeSubmission(latest, { checkpoint: await cp(7), from: 8, digests: [] })).toEqual({
      verdict: 'duplicate',
    });
    // Another history before the latest: the digests from it do not lead to the claimed head.
    const elsewhere = await chain(5, r.slice(0, 5), T0 + 60_000);
    expect(
      judgeSubmission(latest, {
        checkpoint: await checkpoint(elsewhere[9]!, elsewhere[9]!.time),
        from: 8,
        digests: elsewhere.slice(8).map(contentDigest),
      }),
    ).toMatchObject({ verdict: 'conflict', kind: 'inconsistent' });
    expect(judgeSubmission(latest, { checkpoint: await cp(9), from: 5, digests: [] })).toEqual({
      verdict: 'stale-range',
      latest,
    });
    expect(
      judgeSubmission(latest, { checkpoint: await cp(9), from: 8, digests: ['00'.repeat(32)] }),
    ).toMatchObject({ verdict: 'invalid' });
    expect(
      judgeSubmission(latest, {
        checkpoint: await cp(9),
        from: 8,
        digests: Array(MAX_DIGESTS + 1).fill('00'.repeat(32)),
      }),
    ).toMatchObject({ verdict: 'invalid' });
  });
});

describe('statements', () => {
  const sign = async (body: Omit<WitnessStatement, 'signature'>, key = witness) => ({
    ...body,
    signature: toBase64Url(await key.sign(statementMessage(body))),
  });
  const keyOf = (k: SigningKey) => async (id: string) =>
    id === k.publicKey.keyIdHex ? k.publicKey : undefined;

  it('verifies the witness signature, the nonce, and the party signature of every checkpoint listed', async () => {
    const r = await chain(3);
    const seen = await witnessedAt(r[2]!);
    const body = {
      party: 'producer',
      nonce: 'aa'.repeat(16),
      time: iso(T0 + 10_000),
      first: seen,
      latest: seen,
      history: [seen],
      conflicts: [],
      keyId: witness.publicKey.keyIdHex,
    };
    const expect_ = { party: 'producer', nonce: 'aa'.repeat(16) };
    const ok = await verifyStatement(await sign(body), expect_, keyOf(witness), keyOf(party));
    expect(ok.ok && ok.view.required?.seq).toBe(3);
    const bad = async (s: WitnessStatement, e = expect_) =>
      ((await verifyStatement(s, e, keyOf(witness), keyOf(party))) as { reason: string }).reason;
    expect(await bad(await sign(body), { ...expect_, nonce: 'bb'.repeat(16) })).toContain('nonce');
    expect(await bad({ ...(await sign(body)), time: iso(T0) })).toContain('does not verify');
    expect(await bad(await sign({ ...body, keyId: other.publicKey.keyIdHex }, other))).toContain(
      'unknown key',
    );
    // A checkpoint the party never signed, listed by the witness: refused, not believed.
    const invented = { ...seen, hash: 'cd'.repeat(32) };
    expect(await bad(await sign({ ...body, latest: invented, history: [invented] }))).toContain(
      'did not sign',
    );
  });

  it('merges the statements before and after a read: the bar is the one before', async () => {
    const r = await chain(6);
    const a = await witnessedAt(r[2]!);
    const b = await witnessedAt(r[5]!);
    const before = viewOf([a]);
    const after = viewOf([a, b]);
    const m = mergeViews(before, after);
    expect(m.required?.seq).toBe(3);
    expect(m.checkpoints.map((c) => c.seq)).toEqual([3, 6]);
  });
});

describe('compareWithWitness', () => {
  it('an intact chain reaching the latest witnessed checkpoint has no shortfall', async () => {
    const r = await chain(8);
    const w = viewOf([await witnessedAt(r[3]!), await witnessedAt(r[7]!)]);
    expect(compareWithWitness(r, w)).toEqual([]);
    // Records after the latest witnessed one are simply not witnessed yet.
    expect(compareWithWitness(await chain(3, r), w)).toEqual([]);
    const report = await verifyChain('producer', r, [], async () => party.publicKey, w);
    expect(report).toMatchObject({ ok: true, witness: { consulted: true, reached: true } });
  });

  it('names a chain cut after the witness saw it: truncated', async () => {
    const r = await chain(8);
    const w = viewOf([await witnessedAt(r[3]!), await witnessedAt(r[7]!)]);
    expect(kinds(compareWithWitness(r.slice(0, 7), w))).toEqual(['8:truncated']);
    expect(compareWithWitness(r.slice(0, 5), w)[0]!.detail).toBe(
      `the witness saw the chain reach record 8 (checkpoint of ${r[7]!.time}); it ends at record 5: records 6…8 are missing`,
    );
    // A witnessed record missing in the middle (the head kept going).
    expect(kinds(compareWithWitness([...r.slice(0, 3), ...r.slice(4)], w))).toEqual([
      '4:truncated',
    ]);
  });

  it('names a chain cut back and continued: rolled back (later records at witnessed positions)', async () => {
    const r = await chain(8);
    const w = viewOf([await witnessedAt(r[3]!), await witnessedAt(r[7]!)]);
    // Cut to record 5, then 2 records written 10 minutes later.
    const regrown = await chain(2, r.slice(0, 5), T0 + 600_000);
    expect(kinds(compareWithWitness(regrown, w))).toEqual(['6:rolled-back', '8:truncated']);
    // Regrown past the witnessed head: the witnessed position holds a later record.
    const past = await chain(5, r.slice(0, 5), T0 + 600_000);
    expect(kinds(compareWithWitness(past, w))).toEqual(['6:rolled-back', '8:rolled-back']);
    // And the party's own refused checkpoint, kept by the witness, says so by itself.
    const refused = await checkpoint(regrown[6]!, regrown[6]!.time);
    const withConflict = viewOf(w.checkpoints as WitnessedCheckpoint[], {
      conflicts: [
        {
          kind: 'rolled-back',
          checkpoint: refused,
          receivedAt: iso(T0 + 601_000),
          witnessed: { seq: 8, hash: r[7]!.hash },
          detail: 'checkpoint at record 7 after the witness had seen record 8',
        },
      ],
    });
    expect(kinds(compareWithWitness(r.slice(0, 5), withConflict))).toEqual([
      '6:truncated',
      '7:rolled-back',
    ]);
  });

  it('names another history at a witnessed position: rewritten; a refused second head: forked', async () => {
    const r = await chain(8);
    const w = viewOf([await witnessedAt(r[3]!), await witnessedAt(r[7]!)]);
    // Record 3 rewritten with the party's own key and the chain re-signed: consistent, signed, but
    // not what the witness saw.
    const rewritten = await chain(6, [
      ...r.slice(0, 2),
      await signRecord(
        nextRecord({ ...entry(3), details: { n: 'x' } }, r[1]!, 'producer', new Date(r[2]!.time)),
        party,
      ),
    ]);
    const found = kinds(compareWithWitness(rewritten, w));
    expect(found).toEqual(['4:rewritten']);
    const fork = await checkpoint(rewritten[7]!, rewritten[7]!.time);
    const forked = viewOf(w.checkpoints as WitnessedCheckpoint[], {
      conflicts: [
        {
          kind: 'forked',
          checkpoint: fork,
          receivedAt: iso(T0 + 20_000),
          witnessed: { seq: 8, hash: r[7]!.hash },
          detail: 'a second checkpoint at record 8',
        },
      ],
    });
    expect(kinds(compareWithWitness(rewritten, forked))).toEqual(['4:rewritten', '8:forked']);
  });

  it('names an unsigned record after the witness first checkpoint', async () => {
    const r = await chain(4);
    const w = viewOf([await witnessedAt(r[1]!)]);
    const { v: _v, keyId: _k, signature: _s, ...v1 } = r[3]!;
    const downgraded = [...r.slice(0, 3), { ...v1, hash: recordHash(v1) }];
    expect(kinds(compareWithWitness(downgraded, w))).toEqual(['4:rewritten']);
  });
});
