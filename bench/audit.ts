/**
 * The cost of witnessed audit chains (docs/audit.md §2–3): an append (record built, signed with the
 * party's ECDSA P-256 key, stored in SQLite), a chain verification with every record signature checked
 * (no witness, or a chain that does not reach it) against one that reaches the latest witnessed
 * checkpoint (only the records after it checked), and the witness's consistency check of a full
 * submission (4,096 content digests) — beside OpenSSL's own ECDSA P-256 sign and verify rates on this
 * machine. Run: `npm run bench -- audit`; writes bench/reports/audit.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentDigest, GENESIS } from '../src/core/audit/record.ts';
import { verifyChain } from '../src/core/audit/verify.ts';
import { judgeSubmission, MAX_DIGESTS, type WitnessView } from '../src/core/audit/witness.ts';
import { generateKeyPairPem, signingKeyFromPem } from '../src/core/crypto/keys.ts';
import {
  AuditStore,
  auditMigrations,
  type AuditTables,
} from '../src/services/storage/audit-store.ts';
import { openDatabase } from '../src/services/storage/db.ts';
import { machine, median, percentile, writeReport } from './lib.ts';

const N = 5_000;
const TAIL = 100;
const dir = mkdtempSync(join(tmpdir(), 'ztv-bench-audit-'));
const database = await openDatabase<AuditTables>({
  file: join(dir, 'audit.sqlite'),
  migrationTable: 'bench_migrations',
  migrations: auditMigrations,
});
const signer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
const store = new AuditStore(database, 'producer', signer, 100);

const appends: number[] = [];
for (let i = 0; i < N; i++) {
  const t = performance.now();
  await store.append({
    event: '110103',
    subtype: 'retrieve',
    action: 'R',
    outcome: 0,
    actor: { id: 'dr.bob', role: 'physician', organisation: 'consumer', device: 'ab'.repeat(32) },
    objects: [{ type: 'ticket', id: `${i}`.padStart(32, '0') }],
    details: { images: 3, purpose: 'treatment' },
  });
  appends.push(performance.now() - t);
}
const records = await store.all();
const checkpoints = await store.checkpoints();
const key = async (id: string) => (id === signer.publicKey.keyIdHex ? signer.publicKey : undefined);

const time = async (f: () => Promise<unknown>, runs = 3): Promise<number> => {
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await f();
    ts.push(performance.now() - t);
  }
  return median(ts);
};
const bar = records[N - TAIL - 1]!;
const witnessed = {
  ...checkpoints.find((c) => c.seq === bar.seq)!,
  witnessedAt: bar.time,
};
const view: WitnessView = {
  party: 'producer',
  required: witnessed,
  first: witnessed,
  checkpoints: [witnessed],
  conflicts: [],
};
const all = await time(() => verifyChain('producer', records, checkpoints, key));
const reached = await time(() => verifyChain('producer', records, checkpoints, key, view));
const check = await verifyChain('producer', records, checkpoints, key, view);
if (!check.ok)
  throw new Error(`the benchmark chain does not verify: ${JSON.stringify(check.breaks)}`);

const digests = records.slice(0, MAX_DIGESTS).map(contentDigest);
const head = records[MAX_DIGESTS - 1]!;
const judge = await time(async () => {
  const j = judgeSubmission(
    { seq: 0, hash: GENESIS },
    { checkpoint: { ...checkpoints[0]!, seq: head.seq, hash: head.hash }, from: 0, digests },
  );
  if (j.verdict !== 'accept') throw new Error(`unexpected ${j.verdict}`);
});
await database.close();
rmSync(dir, { recursive: true, force: true });

/** OpenSSL's ECDSA P-256 sign/s and verify/s on this core (the peer for the per-record signature). */
function opensslEcdsa(): { sign: number; verify: number } | undefined {
  try {
    const out = execFileSync('openssl', ['speed', '-seconds', '1', 'ecdsap256'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const line = out.split('\n').find((l) => /^\s*256 bits ecdsa \(nistp256\)/.test(l));
    const cols = line?.trim().split(/\s+/) ?? [];
    return { sign: Number(cols.at(-2)), verify: Number(cols.at(-1)) };
  } catch {
    return undefined;
  }
}
const ossl = opensslEcdsa();
const us = (ms: number) => (ms * 1000).toFixed(0);

const report = `# Witnessed audit chains: append and verification cost

A producer chain of ${N.toLocaleString('en')} v2 records in SQLite (WAL, synchronous FULL), each signed with an
ECDSA P-256 organisation key, a checkpoint every 100 records; verification as an auditor's tool does it
(\`verifyChain\`), on one core with a one-thread libuv pool.

Machine: ${machine()}

| operation | median | p99 |
| --- | --- | --- |
| append one record (build, sign, insert, commit) | ${appends.length ? median(appends).toFixed(2) : '-'} ms | ${percentile(appends, 99).toFixed(2)} ms |
| verify the whole chain, every record signature checked (no witness, or one not reached) | ${(all / 1000).toFixed(2)} s (${us(all / N)} µs/record) | |
| verify the whole chain reaching a witnessed checkpoint ${TAIL} records before the head (${TAIL} signatures checked) | ${reached.toFixed(0)} ms (${us(reached / N)} µs/record) | |
| witness: judge a submission of ${MAX_DIGESTS.toLocaleString('en')} content digests (chain recomputed) | ${judge.toFixed(0)} ms | |

Peer, same machine: \`openssl speed ecdsap256\` — ${ossl ? `${ossl.sign.toLocaleString('en')} sign/s (${(1e6 / ossl.sign).toFixed(0)} µs), ${ossl.verify.toLocaleString('en')} verify/s (${(1e6 / ossl.verify).toFixed(0)} µs)` : 'unavailable'}.

Checking every record's signature costs one ECDSA verification a record through WebCrypto, several
times OpenSSL's raw rate on this machine (Node's WebCrypto dispatches each operation as a job); the
rest (~100 µs a record) is canonical JSON and two SHA-256 per record. Past a witnessed checkpoint the chain reaches unbroken the signatures add nothing the
witness does not already prove, so verification checks only the records after it (docs/audit.md §2).
Rerun: \`npm run bench -- audit\`.
`;
console.log(report);
console.log(`report written to ${await writeReport('audit', report)}`);
