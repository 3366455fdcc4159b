/**
 * Capacity and container size for every real sample: how the protection laid each image out, or why
 * it could not — every file of small/, large/ and odd/, and every slice of each series (summarised as
 * min / median / max). Run: `npm run bench -- capacity`; writes bench/reports/capacity.md and the
 * generated tables of docs/protection.md (between its `capacity:` markers).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isZtvError } from '../src/core/errors.ts';
import { protect, type ProtectReport } from '../src/core/protect/index.ts';
import { testKeys } from '../test/keys.ts';
import { MANIFEST, type ManifestEntry } from '../test/manifest.ts';
import { REPO_ROOT, SAMPLES, sampleFiles } from '../test/samples.ts';
import { machine, median, writeMarkdown, writeReport } from './lib.ts';

interface Done {
  readonly m: ManifestEntry;
  readonly r: ProtectReport;
}
interface Refused {
  readonly m: ManifestEntry;
  readonly code: string;
  readonly message: string;
  readonly neededBits?: number;
  readonly availableBits?: number;
}

const keys = await testKeys();
const byFile = new Map(MANIFEST.map((m) => [m.file, m]));
const rel = (abs: string): string => abs.slice(SAMPLES.length + 1);

/** Every .dcm file on disk, each of which must have its manifest entry (so none is skipped). */
function entries(folder: string): ManifestEntry[] {
  return sampleFiles(folder).map((f) => {
    const m = byFile.get(rel(f));
    if (!m) throw new Error(`${rel(f)} is not in the samples manifest`);
    return m;
  });
}

async function run(m: ManifestEntry): Promise<Done | Refused> {
  try {
    const p = await protect(new Uint8Array(readFileSync(join(SAMPLES, m.file))), {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
      what: m.file,
    });
    return { m, r: p.report };
  } catch (e) {
    if (!isZtvError(e)) throw e;
    const d = e.details as { neededBits?: number; availableBits?: number };
    return {
      m,
      code: e.code,
      message: e.message,
      ...(typeof d.neededBits === 'number' ? { neededBits: d.neededBits } : {}),
      ...(typeof d.availableBits === 'number' ? { availableBits: d.availableBits } : {}),
    };
  }
}

const isDone = (x: Done | Refused): x is Done => 'r' in x;
const used = (r: ProtectReport): number => (100 * r.payloadBits) / r.capacityBits;

const singles: Done[] = [];
const refused: Refused[] = [];
for (const folder of ['small', 'large', 'odd']) {
  for (const m of entries(folder)) {
    const x = await run(m);
    if (isDone(x)) singles.push(x);
    else refused.push(x);
  }
}

interface SeriesSummary {
  readonly name: string;
  readonly slices: number;
  readonly dims: string;
  readonly bits: string;
  readonly done: Done[];
}
const series: SeriesSummary[] = [];
for (const name of ['ct_chest_LIDC-IDRI-0314', 'mr_brain_mprage_FNNDSC-adi']) {
  const all = entries(`series/${name}`);
  const done: Done[] = [];
  for (const m of all) {
    const x = await run(m);
    if (isDone(x)) done.push(x);
    else refused.push(x);
  }
  const distinct = (f: (m: ManifestEntry) => string) => [...new Set(all.map(f))].join(', ');
  series.push({
    name,
    slices: all.length,
    dims: distinct((m) => m.dims),
    bits: distinct((m) => m.bits),
    done,
  });
}

/** min / median / max of a figure over a series' slices (one value when they all agree). */
function spread(xs: number[], digits = 0): string {
  const f = (x: number) => x.toFixed(digits);
  const [lo, mid, hi] = [Math.min(...xs), median(xs), Math.max(...xs)];
  return lo === hi ? f(lo) : `${f(lo)} / ${f(mid)} / ${f(hi)}`;
}
const distinctOf = (xs: string[]): string => [...new Set(xs)].join(', ');

const fullRow = ({ m, r }: Done): string =>
  `| ${m.file} | ${m.dims} | ${m.bits} | ${r.samples} | v${r.format} | ${r.containerBytes} | ${r.tiles} × ${r.tileSide} | ${r.L} | ${r.K} | ${r.T} / ${r.k} | ${r.payloadBits} | ${r.capacityBits} | ${used(r).toFixed(0)}% |`;

const seriesRow = (s: SeriesSummary): string => {
  const rs = s.done.map((d) => d.r);
  return `| series/${s.name} (${s.done.length} of ${s.slices} slices) | ${s.dims} | ${s.bits} | ${spread(rs.map((r) => r.samples))} | ${distinctOf(rs.map((r) => `v${r.format}`))} | ${spread(rs.map((r) => r.containerBytes))} | ${distinctOf(rs.map((r) => `${r.tiles} × ${r.tileSide}`))} | ${spread(rs.map((r) => r.L))} | ${spread(rs.map((r) => r.K))} | ${distinctOf(rs.map((r) => `${r.T} / ${r.k}`))} | ${spread(rs.map((r) => r.payloadBits))} | ${spread(rs.map((r) => r.capacityBits))} | ${spread(rs.map(used))}% |`;
};

const bitsOr = (n: number | undefined): string => (n === undefined ? '—' : String(n));
const refusedRow = (x: Refused): string =>
  `| ${x.m.file} | ${x.m.dims} | ${x.code} | ${bitsOr(x.neededBits)} | ${bitsOr(x.availableBits)} | ${x.message.replace(/\|/g, '\\|')} |`;

const header =
  '| file | dims | bits | samples | format | container (bytes) | tiles | L | K | T / k | payload (bits) | capacity (bits) | used |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |';
const capacityTable = `${header}
${[...singles.map(fullRow), ...series.map(seriesRow)].join('\n')}`;
const refusedTable = `| file | dims | error | needed (bits) | available (bits) | message |
| --- | --- | --- | --- | --- | --- |
${refused.map(refusedRow).join('\n')}`;

const report = `# Capacity and container size per sample

Machine: ${machine()}. Every file of \`small/\`, \`large/\` and \`odd/\`, and every slice of both series; a series'
figures are min / median / max over its slices (one figure when all agree).

Columns: _format_ the container version written (v2; v1 where a v2 container does not fit); _container_ bytes (fixed
part, one 8-byte tag per tile, seal, trace slot); _tiles_ count × side in units;
_L_ container bit planes; _K_ samples in the container region R; _T / k_ threshold and bits per expanded sample of the
prediction-error expansion; _payload_ bits hidden (location map + R's original low bits); _capacity_ estimated bits
the image offers at those parameters; _used_ payload / capacity.

${capacityTable}

## Not protected, and why

_needed_ is the least hiding capacity any layout of the container would need (container bits plus 128 bits of side
information); _available_ the most the image was estimated to offer over every layout tried (0 when the container
region alone is larger than the image).

${refusedTable}

Rerun: \`npm run bench -- capacity\` (also rewrites the generated tables of \`docs/protection.md\`).
`;

/** Replaces what lies between `<!-- capacity:NAME -->` and `<!-- /capacity:NAME -->` in the doc. */
function splice(doc: string, name: string, body: string): string {
  const open = `<!-- capacity:${name} -->`;
  const close = `<!-- /capacity:${name} -->`;
  const a = doc.indexOf(open);
  const b = doc.indexOf(close);
  if (a < 0 || b < a) throw new Error(`docs/protection.md has no ${open} … ${close} section`);
  return `${doc.slice(0, a + open.length)}\n\n${body}\n\n${doc.slice(b)}`;
}
const docPath = join(REPO_ROOT, 'docs/protection.md');
let doc = readFileSync(docPath, 'utf8');
doc = splice(doc, 'table', capacityTable);
doc = splice(doc, 'refused', refusedTable);
await writeMarkdown(docPath, doc);
const reportPath = await writeReport('capacity', report);

const slices = series.reduce((n, s) => n + s.done.length, 0);
console.log(
  `${singles.length} files and ${slices} series slices protected, ${refused.length} refused; report written to ${reportPath}; docs/protection.md tables updated`,
);
