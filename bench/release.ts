/**
 * Protocol v2's release traces against v1's, inside the cloud and in the verifier: signing the traces
 * of a 150-image release (one ECDSA signature over a Merkle root against 150 signatures), and keyless
 * verification of the 150 served images (a path per image and the root once per ticket, against a
 * signature per image). 30 real CT slices, each named 5 times (every item costs the same whatever its
 * image). Run: `npm run bench -- release`; writes bench/reports/release.md.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import {
  protect,
  signRelease,
  traceBasis,
  traceIdFrom,
  traceRootCache,
  verifyProtected,
  writeTraceSlot,
} from '../src/core/protect/index.ts';
import { randomBytes } from '../src/core/bytes.ts';
import { testKeys } from '../test/keys.ts';
import { sampleFiles } from '../test/samples.ts';
import { machine, median, writeReport } from './lib.ts';

const ROUNDS = 7;
const ITEMS = 150;
const keys = await testKeys();
const slices = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(0, 30);
const images: Record<1 | 2, Uint8Array[]> = { 1: [], 2: [] };
for (const f of slices) {
  const input = new Uint8Array(readFileSync(f));
  for (const format of [1, 2] as const)
    images[format].push(
      (await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey, format }))
        .bytes,
    );
}
const loadBefore = loadavg()[0]!;
const rows: string[] = [];
for (const format of [1, 2] as const) {
  const files = Array.from({ length: ITEMS }, (_, i) => images[format][i % slices.length]!);
  const bases = files.map((b) => traceBasis(b));
  const items = bases.map((basis, i) => ({ basis, traceId: traceIdFrom(`T-${i}`) }));
  const sign: number[] = [];
  const verify: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    const rel = await signRelease(items, { signer: keys.cloud, redemptionId: randomBytes(16) });
    sign.push(performance.now() - t);
    const served = files.map((b, i) => writeTraceSlot(b, rel.slots[i]!));
    const roots = traceRootCache();
    t = performance.now();
    for (const s of served) {
      const v = await verifyProtected(s, { resolver: keys.resolver, traceRoots: roots });
      if (v.status !== 'verified') throw new Error(v.summary);
    }
    verify.push(performance.now() - t);
  }
  rows.push(
    `| v${format} | ${format === 1 ? ITEMS : Math.ceil(ITEMS / 1024)} | ${median(sign).toFixed(1)} | ${median(verify).toFixed(0)} | ${(median(verify) / ITEMS).toFixed(2)} |`,
  );
}
const report = `# Release traces: protocol v1 against v2

One release of ${ITEMS} images (${slices.length} real CT slices of \`series/ct_chest_LIDC-IDRI-0314\`, each
named ${ITEMS / slices.length} times), cloud key ECDSA P-256 through WebCrypto, one core. "sign" is the
cloud's \`signRelease\` for the whole release (v1: one signature per image; v2: the Merkle tree and one
signature over its root); "verify" is keyless verification of the ${ITEMS} served images one after the
other with one root cache (as a viewer's worker does per ticket): seal, trace, ciphertext digest.
Medians of ${ROUNDS} rounds.

Machine: ${machine()}. Load average (1 min) ${loadBefore.toFixed(1)} before the run on ${cpus().length} cores:
on a shared machine, take the figures as upper bounds of the time.

| format | cloud signatures | sign the release, ms | verify ${ITEMS} served images, ms | verify ms/image |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

Rerun: \`npm run bench -- release\`.
`;
const path = await writeReport('release', report);
console.log(report);
console.log(`report written to ${path}`);
