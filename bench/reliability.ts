/**
 * Reliability campaign (issue 17): how far tamper detection and the parsers hold, in figures.
 * Run: `npm run bench -- reliability` (or `taskset -c 0 npx tsx bench/reliability.ts`); writes
 * bench/reports/reliability.md. `ZTV_RELIABILITY_PARTS=tamper,fuzz` runs some parts only;
 * `ZTV_RELIABILITY_SCALE=0.1` scales every trial count, `ZTV_FUZZ_SCALE` the fuzzing's alone (the
 * report's command line says so). The crash campaign (`crash`) runs 100 trials per service and phase
 * on each database by default (800 on each: hours on 2 cores); `ZTV_CRASH_TRIALS` sets the number per
 * database, `ZTV_CRASH_MINUTES` bounds its time (the report then says how many ran). The crash and
 * load parts run the federation on every core (the bench runner pins a benchmark to one).
 * The short slices of each part run in `npm test` (test/reliability-*.test.ts).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, machine, widenToAllCores, writeReport } from './lib.ts';
import { fuzzSection } from './reliability/fuzz-report.ts';
import { crashSection } from './reliability/crash.ts';
import { loadSection } from './reliability/load.ts';
import { tamperSection } from './reliability/report.ts';

const parts = (process.env.ZTV_RELIABILITY_PARTS ?? 'tamper,fuzz,crash,load').split(',');
if (parts.includes('crash') || parts.includes('load')) widenToAllCores();
const scale = Number(process.env.ZTV_RELIABILITY_SCALE ?? '1');
const fuzzScale = Number(process.env.ZTV_FUZZ_SCALE ?? scale);
const crashTrials = Number(process.env.ZTV_CRASH_TRIALS ?? Math.max(8, Math.round(800 * scale)));
const crashMinutes = Number(process.env.ZTV_CRASH_MINUTES ?? Infinity);
const started = Date.now();

const command = [
  process.env.ZTV_RELIABILITY_PARTS ? `ZTV_RELIABILITY_PARTS=${parts.join(',')}` : '',
  scale !== 1 ? `ZTV_RELIABILITY_SCALE=${scale}` : '',
  fuzzScale !== scale ? `ZTV_FUZZ_SCALE=${fuzzScale}` : '',
  process.env.ZTV_CRASH_TRIALS ? `ZTV_CRASH_TRIALS=${crashTrials}` : '',
  process.env.ZTV_CRASH_MINUTES ? `ZTV_CRASH_MINUTES=${crashMinutes}` : '',
  ...Object.entries(process.env)
    .filter(([k]) => k.startsWith('ZTV_LOAD_'))
    .map(([k, v]) => `${k}=${v}`),
  'npm run bench -- reliability',
]
  .filter(Boolean)
  .join(' ');

const KEPT = '\n_(kept from an earlier run: this run left the part out)_\n';
const ran = new Map<string, string>();
let defects = 0;
for (const [part, title, run] of [
  ['tamper', '## Tamper campaign', () => tamperSection(scale)],
  ['fuzz', '## Fuzzing', () => fuzzSection(fuzzScale)],
  ['crash', '## Crash campaign', () => crashSection(crashTrials, undefined, crashMinutes)],
  ['load', '## Sustained load', () => loadSection(scale)],
] as const) {
  if (parts.includes(part)) {
    const t0 = Date.now();
    const load = loadavg()[0]!.toFixed(1);
    const s = await run();
    // Each section says which run made it: parts are often run on their own.
    const made =
      `_This section: \`${command}\`, ${new Date(t0).toISOString().slice(0, 16)} UTC, ` +
      `${((Date.now() - t0) / 60000).toFixed(1)} min, load average ${load} at its start._`;
    ran.set(title, s.markdown.replace(/^(## .*\n)/, `$1\n${made}\n`));
    defects += s.defects;
  }
}

/**
 * The sections of the report as it stands now, by title (read at the end, so that campaigns of
 * different parts run side by side keep each other's sections): a part not run this time keeps its
 * own, marked once as kept.
 */
const previous = new Map<string, string>();
try {
  const text = readFileSync(join(BENCH_DIR, 'reports', 'reliability.md'), 'utf8');
  for (const s of text.split(/^(?=## )/m).slice(1))
    previous.set(s.split('\n')[0]!, s.split(KEPT.trim()).join('').trimEnd());
} catch {
  /* first run */
}
const sections = ['## Tamper campaign', '## Fuzzing', '## Crash campaign', '## Sustained load']
  .map((title) => ran.get(title) ?? (previous.has(title) ? `${previous.get(title)!}\n${KEPT}` : ''))
  .filter(Boolean);

const path = await writeReport(
  'reliability',
  [
    '# Reliability campaign',
    '',
    `Last run: \`${command}\` (\`bench/reliability.ts\`, parts in \`bench/reliability/\`; each ` +
      `section names the run that made it). Machine: ${machine()}. ` +
      `Took ${((Date.now() - started) / 60000).toFixed(1)} min. Defects found in this run: **${defects}**.`,
    '',
    'The short slices of each part run in `npm test`: `test/reliability-tamper.test.ts`, ' +
      '`test/reliability-fuzz.test.ts`, `test/reliability-crash.test.ts`.',
    '',
    ...sections,
  ].join('\n'),
);
console.log(`wrote ${path}; ${defects} defect(s)`);
process.exit(defects ? 1 : 0);
