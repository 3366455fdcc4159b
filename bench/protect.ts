/**
 * Protect and open throughput on the real CT series (150 slices of 512x512x16), one core, for the
 * WebCrypto and the pure-JavaScript AES-256-CTR paths (the default image key size, set explicitly
 * here), against a baseline tree in the same run: each round over the series runs in a child process of
 * its own (two trees in one process share their libraries' JIT feedback, which skews both), the trees
 * alternating so that the shared machine's load hits both alike; openssl's own AES-CTR and SHA-256
 * speeds for scale.
 * Run: `npm run bench -- protect` (or `taskset -c 0 npx tsx bench/protect.ts`); writes
 * bench/reports/protect.md. ZTV_BENCH_BASELINE=<git ref> picks the baseline (default: the tree before
 * the open-path work of issue 6; `none` for none).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import type { CipherBackend } from '../src/core/protect/cipher.ts';
import * as current from '../src/core/protect/index.ts';
import { testKeys } from '../test/keys.ts';
import { REPO_ROOT, sampleFiles } from '../test/samples.ts';
import { machine, median, opensslSpeed, writeReport } from './lib.ts';

/** The last commit before the open path was optimised (bench/reports/protect.md's "before"). */
const DEFAULT_BASELINE = '0254a38';
const ROUNDS = 3;

const files = sampleFiles('series/ct_chest_LIDC-IDRI-0314');
const inputs = files.map((f) => new Uint8Array(readFileSync(f)));
let pixelBytes = 0;
for (const b of inputs) pixelBytes += (await readPixelData(parseDicom(b))).data.length;
const MB = pixelBytes / 1e6;
const keys = await testKeys();
/** The image key size measured: the default of `protect` and of `ztv protect`. */
const KEY_BITS = 256;

type Codec = Pick<typeof current, 'protect' | 'openProtected' | 'verifyProtected'>;

interface Tree {
  readonly name: string;
  /** The directory whose src/ is measured. */
  readonly dir: string;
}

/** The baseline's src/ extracted from git into a temporary directory. */
function baseline(): { name: string; dir: string; cleanup(): void } | undefined {
  const ref = process.env.ZTV_BENCH_BASELINE ?? DEFAULT_BASELINE;
  if (ref === 'none') return undefined;
  let commit: string;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', `${ref}^{commit}`], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    console.warn(`baseline ${ref} is not a commit of this repository: measuring this tree only`);
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'ztv-bench-baseline-'));
  // With its package.json and tsconfig.json: without them tsx compiles the tree differently (as
  // CommonJS), and its protect ran 2–3× slower than the same code as the project runs it.
  const tar = execFileSync('git', ['archive', commit, 'src', 'package.json', 'tsconfig.json'], {
    cwd: REPO_ROOT,
    maxBuffer: 1 << 30,
  });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  return {
    name: `baseline ${commit}`,
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const codecOf = async (dir: string): Promise<Codec> =>
  (await import(join(dir, 'src/core/protect/index.ts'))) as Codec;

interface Times {
  protect: number[];
  open: number[];
  verify: number[];
}

const empty = (): Times => ({ protect: [], open: [], verify: [] });

async function run(codec: Codec, backend: CipherBackend, into: Times): Promise<void> {
  const prot: { bytes: Uint8Array; key: Uint8Array }[] = [];
  for (const input of inputs) {
    const t = performance.now();
    const p = await codec.protect(input, {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
      keyBits: KEY_BITS,
      backend,
    });
    into.protect.push(performance.now() - t);
    prot.push({ bytes: p.bytes, key: p.imageKey });
  }
  for (const p of prot) {
    let t = performance.now();
    const o = await codec.openProtected(p.bytes, {
      resolver: keys.resolver,
      imageKey: p.key,
      backend,
    });
    into.open.push(performance.now() - t);
    if (o.verdict.status !== 'verified')
      throw new Error(`benchmark image failed: ${o.verdict.summary}`);
    t = performance.now();
    await codec.verifyProtected(p.bytes, { resolver: keys.resolver });
    into.verify.push(performance.now() - t);
  }
}

/**
 * Files protected by each tree open verified, with the same pixels, with the other's open. In format
 * v1: a tree from before protocol v2 opens no v2 file (this tree writes v2 by default, and v1 on request;
 * options a tree does not know it ignores).
 */
async function crossCheck(a: Codec, b: Codec): Promise<void> {
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const)
    for (const input of inputs.slice(0, 10)) {
      const p = await from.protect(input, {
        signer: keys.producer,
        pseudonymKey: keys.pseudonymKey,
        format: 1,
      });
      const x = await from.openProtected(p.bytes, {
        resolver: keys.resolver,
        imageKey: p.imageKey,
      });
      const y = await to.openProtected(p.bytes, { resolver: keys.resolver, imageKey: p.imageKey });
      const same =
        x.restored && y.restored && Buffer.from(x.restored.pixels).equals(y.restored.pixels);
      if (y.verdict.status !== 'verified' || !same)
        throw new Error('a file protected by one tree does not open identically with the other');
    }
}

/** Child mode: one round over the series with one tree and one backend; times as JSON. */
const child = process.env.ZTV_BENCH_PROTECT_CHILD;
if (child) {
  const { dir, backend } = JSON.parse(child) as { dir: string; backend: CipherBackend };
  const codec = dir === REPO_ROOT ? current : await codecOf(dir);
  // Warm up the JIT and the codec modules on a few slices first.
  for (const input of inputs.slice(0, 5))
    await codec.protect(input, {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
      keyBits: KEY_BITS,
    });
  const t = empty();
  await run(codec, backend, t);
  // Written before exiting: to a pipe, stdout is asynchronous.
  await new Promise<void>((r) => process.stdout.write(`\n${JSON.stringify(t)}\n`, () => r()));
  process.exit(0);
}

function round(dir: string, backend: CipherBackend): Times {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, ZTV_BENCH_PROTECT_CHILD: JSON.stringify({ dir, backend }) },
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`a benchmark round failed (${dir}, ${backend})`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Times;
}

const base = baseline();
const trees: Tree[] = [
  ...(base ? [{ name: base.name, dir: base.dir }] : []),
  { name: 'this tree', dir: REPO_ROOT },
];
const backends: CipherBackend[] = ['webcrypto', 'js'];
const times = new Map<string, Times>();
const key = (t: Tree, b: CipherBackend) => `${t.name}|${b}`;
let loadBefore: number | undefined;
let loadAfter: number | undefined;
try {
  if (base) await crossCheck(await codecOf(base.dir), current);
  loadBefore = loadavg()[0]!;
  for (const backend of backends)
    for (let r = 0; r < ROUNDS; r++)
      for (const t of trees) {
        const k = key(t, backend);
        const got = round(t.dir, backend);
        const into = times.get(k) ?? empty();
        into.protect.push(...got.protect);
        into.open.push(...got.open);
        into.verify.push(...got.verify);
        times.set(k, into);
      }
  loadAfter = loadavg()[0]!;
} finally {
  base?.cleanup();
}
const aes = opensslSpeed('aes-128-ctr');
const aes256 = opensslSpeed('aes-256-ctr');
const sha = opensslSpeed('sha256');

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / 1000;
const rate = (xs: number[]) => (ROUNDS * MB) / sum(xs);
const rows: string[] = [];
for (const backend of backends)
  for (const t of trees) {
    const x = times.get(key(t, backend))!;
    rows.push(
      `| ${backend} | ${t.name} | ${rate(x.protect).toFixed(1)} | ${rate(x.open).toFixed(1)} | ${rate(x.verify).toFixed(1)} | ${median(x.protect).toFixed(1)} | ${median(x.open).toFixed(1)} |`,
    );
  }
const speedup = (backend: CipherBackend, what: keyof Times): string => {
  if (!base) return '';
  const b = times.get(key(trees[0]!, backend))![what];
  const c = times.get(key(trees.at(-1)!, backend))![what];
  return `${(sum(b) / sum(c)).toFixed(2)}×`;
};

const report = `# Protect and open throughput

${files.length} slices of the real CT series \`series/ct_chest_LIDC-IDRI-0314\` (512x512, 16-bit, ${MB.toFixed(1)} MB of pixel
data), processed one after the other in one Node process, with **AES-${KEY_BITS}-CTR** image keys (the default of
\`ztv protect\`; \`--aes 128\` selects AES-128). MB/s are of pixel data; "open" decrypts, restores and checks everything
with the image key; "verify" checks seal, trace and ciphertext without it (no AES at all). ${
  base
    ? `Each configuration ran ${ROUNDS} times over the series, each time in a fresh process, the ${base.name.replace('baseline ', 'baseline (commit ')}, ${base.name.endsWith(DEFAULT_BASELINE) ? 'the tree before\nthe open path was optimised' : 'the tree compared'}) and this tree alternating; MB/s over all rounds, medians per slice. Files protected by
either tree open verified, with identical pixels, with the other (checked on 10 slices before measuring).`
    : `Each configuration ran ${ROUNDS} times over the series; MB/s over all rounds, medians per slice.`
}

Machine: ${machine()}. Load average (1 min) ${loadBefore?.toFixed(1)} before and ${loadAfter?.toFixed(1)} after the run, on
${cpus().length} cores: on a shared machine, take the figures as lower bounds.

| AES-${KEY_BITS}-CTR path | tree | protect MB/s | open MB/s | verify (no key) MB/s | protect ms/slice (median) | open ms/slice (median) |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
${
  base
    ? `
Speed-up of this tree over the baseline (time over the series): open ${speedup('webcrypto', 'open')} (WebCrypto AES) and
${speedup('js', 'open')} (pure-JS AES); verify ${speedup('webcrypto', 'verify')}; protect ${speedup('webcrypto', 'protect')} and ${speedup('js', 'protect')}.
Where the time went and what changed: \`docs/protection.md\` ("Performance").
`
    : ''
}
For scale, this machine's \`openssl speed -evp aes-128-ctr\`: ${aes}; \`-evp aes-256-ctr\`: ${aes256}; \`-evp sha256\`:
${sha} (16 KiB blocks).

Rerun: \`npm run bench -- protect\` (pins the process to one core with \`taskset -c 0\` when available), or
\`npx tsx bench/protect.ts\`; \`ZTV_BENCH_BASELINE=<git ref>\` compares against another commit (\`none\`: no baseline).
`;
const reportPath = await writeReport('protect', report);
console.log(report);
console.log(`report written to ${reportPath}`);
