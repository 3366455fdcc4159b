/**
 * Protect and open throughput on the real CT series (150 slices of 512x512x16), one core, for the
 * WebCrypto and the pure-JavaScript AES-256-CTR paths (the default image key size, set explicitly
 * here), with openssl's own AES-CTR and SHA-256 speeds for scale. Run: `npm run bench -- protect` (or `taskset -c 0 npx tsx bench/protect.ts`); writes
 * bench/reports/protect.md.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import type { CipherBackend } from '../src/core/protect/cipher.ts';
import { openProtected, protect, verifyProtected } from '../src/core/protect/index.ts';
import { testKeys } from '../test/keys.ts';
import { sampleFiles } from '../test/samples.ts';
import { machine, median, opensslSpeed, writeReport } from './lib.ts';

const files = sampleFiles('series/ct_chest_LIDC-IDRI-0314');
const inputs = files.map((f) => new Uint8Array(readFileSync(f)));
let pixelBytes = 0;
for (const b of inputs) pixelBytes += (await readPixelData(parseDicom(b))).data.length;
const MB = pixelBytes / 1e6;
const keys = await testKeys();
/** The image key size measured: the default of `protect` and of `ztv protect`. */
const KEY_BITS = 256;

interface Row {
  backend: CipherBackend;
  protect: number;
  open: number;
  verify: number;
  protectMs: number;
  openMs: number;
}

async function run(backend: CipherBackend): Promise<Row> {
  const protectTimes: number[] = [];
  const openTimes: number[] = [];
  const verifyTimes: number[] = [];
  const prot: { bytes: Uint8Array; key: Uint8Array }[] = [];
  for (const input of inputs) {
    const t = performance.now();
    const p = await protect(input, {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
      keyBits: KEY_BITS,
      backend,
    });
    protectTimes.push(performance.now() - t);
    prot.push({ bytes: p.bytes, key: p.imageKey });
  }
  for (const p of prot) {
    let t = performance.now();
    const o = await openProtected(p.bytes, { resolver: keys.resolver, imageKey: p.key, backend });
    openTimes.push(performance.now() - t);
    if (o.verdict.status !== 'verified')
      throw new Error(`benchmark image failed: ${o.verdict.summary}`);
    t = performance.now();
    await verifyProtected(p.bytes, { resolver: keys.resolver });
    verifyTimes.push(performance.now() - t);
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / 1000;
  return {
    backend,
    protect: MB / sum(protectTimes),
    open: MB / sum(openTimes),
    verify: MB / sum(verifyTimes),
    protectMs: median(protectTimes),
    openMs: median(openTimes),
  };
}

// Warm up the JIT and the codec modules on a few slices first.
for (const input of inputs.slice(0, 5))
  await protect(input, {
    signer: keys.producer,
    pseudonymKey: keys.pseudonymKey,
    keyBits: KEY_BITS,
  });
const loadBefore = loadavg()[0]!;
const rows = [await run('webcrypto'), await run('js')];
const loadAfter = loadavg()[0]!;
const aes = opensslSpeed('aes-128-ctr');
const aes256 = opensslSpeed('aes-256-ctr');
const sha = opensslSpeed('sha256');

const table = rows
  .map(
    (r) =>
      `| ${r.backend} | ${r.protect.toFixed(1)} | ${r.open.toFixed(1)} | ${r.verify.toFixed(1)} | ${r.protectMs.toFixed(1)} | ${r.openMs.toFixed(1)} |`,
  )
  .join('\n');
const report = `# Protect and open throughput

${files.length} slices of the real CT series \`series/ct_chest_LIDC-IDRI-0314\` (512x512, 16-bit, ${MB.toFixed(1)} MB of pixel
data), processed one after the other in one Node process, with **AES-${KEY_BITS}-CTR** image keys (the default of
\`ztv protect\`; \`--aes 128\` selects AES-128). MB/s are of pixel data; "open" decrypts, restores and checks everything
with the image key; "verify" checks seal, trace and ciphertext without it (no AES at all).

Machine: ${machine()}. Load average (1 min) ${loadBefore.toFixed(1)} before and ${loadAfter.toFixed(1)} after the run, on
${cpus().length} cores: on a shared machine, take the figures as lower bounds.

| AES-${KEY_BITS}-CTR path | protect MB/s | open MB/s | verify (no key) MB/s | protect ms/slice (median) | open ms/slice (median) |
| --- | --- | --- | --- | --- | --- |
${table}

For scale, this machine's \`openssl speed -evp aes-128-ctr\`: ${aes}; \`-evp aes-256-ctr\`: ${aes256}; \`-evp sha256\`:
${sha} (16 KiB blocks).

Rerun: \`npm run bench -- protect\` (pins the process to one core with \`taskset -c 0\` when available), or
\`npx tsx bench/protect.ts\`.
`;
console.log(report);
console.log(`report written to ${writeReport('protect', report)}`);
