/**
 * Capacity and container size for every real sample: how the protection laid each image out, or why
 * it could not. Run: `npm run bench -- capacity`; writes bench/reports/capacity.md (docs/protection.md
 * quotes it).
 */
import { readFileSync } from 'node:fs';
import { isZtvError } from '../src/core/errors.ts';
import { protect } from '../src/core/protect/index.ts';
import { testKeys } from '../test/keys.ts';
import { MANIFEST } from '../test/manifest.ts';
import { samplePath } from '../test/samples.ts';
import { machine, writeReport } from './lib.ts';

const keys = await testKeys();
const rows: string[] = [];
const failures: string[] = [];
const pick = MANIFEST.filter(
  (m) =>
    !m.file.startsWith('series/') ||
    m.file.endsWith('/000002.dcm') ||
    m.file.endsWith('/36749110.dcm'),
);
for (const m of pick) {
  try {
    const p = await protect(new Uint8Array(readFileSync(samplePath(m.file))), {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
    });
    const r = p.report;
    rows.push(
      `| ${m.file} | ${m.dims} | ${m.bits} | ${r.samples} | ${r.containerBytes} | ${r.tiles} × ${r.tileSide} | ${r.L} | ${r.K} | ${r.T} / ${r.k} | ${r.payloadBits} | ${r.capacityBits} | ${((100 * r.payloadBits) / r.capacityBits).toFixed(0)}% |`,
    );
  } catch (e) {
    if (!isZtvError(e)) throw e;
    failures.push(`| ${m.file} | ${m.dims} | ${e.code} | ${e.message} |`);
  }
}
const report = `# Capacity and container size per sample

Machine: ${machine()}. Series: one slice of each (all slices of a series are alike).

Columns: *container* bytes (fixed part, one 8-byte tag per tile, seal, trace slot); *tiles* count × side in units;
*L* container bit planes; *K* samples in the container region R; *T / k* threshold and bits per expanded sample of the
prediction-error expansion; *payload* bits hidden (location map + R's original low bits); *capacity* estimated bits
the image offers at those parameters; *used* payload / capacity.

| file | dims | bits | samples | container | tiles | L | K | T / k | payload | capacity | used |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

## Not protected, and why

| file | dims | error | message |
| --- | --- | --- | --- |
${failures.join('\n')}

Rerun: \`npm run bench -- capacity\`.
`;
console.log(
  `${rows.length} protected, ${failures.length} refused; report written to ${writeReport('capacity', report)}`,
);
