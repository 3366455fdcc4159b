/**
 * The sustained-load part of the reliability campaign: concurrent clinicians (Node clients on the
 * real protocol, `load-clients.ts`) against a whole federation on this machine, at 1, 5, 10, 25
 * and 50 clients for a bounded time each, then a sustained level for longer; once with the cloud as
 * one process (SQLite, what `npm start` runs by default) and once as one worker per core on
 * PostgreSQL (`src/services/cloud/cluster.ts`). Figures: errors (503 apart), p50/p99 of consult,
 * redemption and first instance, images/s, each service process's memory and file descriptors at
 * the start and at the end.
 *
 * Knobs: ZTV_LOAD_MODES (`sqlite,workers`), ZTV_LOAD_LEVELS (`1,5,10,25,50`), ZTV_LOAD_LEVEL_S
 * (seconds per level, 60 × scale), ZTV_LOAD_SUSTAINED (clients, 10), ZTV_LOAD_SUSTAINED_S (600 ×
 * scale), ZTV_LOAD_SLICES (CT slices outsourced, 150).
 */
import { availableParallelism, loadavg } from 'node:os';
import {
  federationProcesses,
  startTestFederation,
  type ServiceProcess,
  type TestClinician,
} from '../../test/federation.ts';
import { median, percentile } from '../lib.ts';
import { runLevel, type LevelResult } from './load-clients.ts';

const list = (v: string | undefined, d: string): string[] => (v ?? d).split(',').filter(Boolean);

interface ModeResult {
  readonly mode: string;
  readonly description: string;
  readonly levels: (LevelResult & { load: number })[];
  readonly sustained: LevelResult & { load: number };
  readonly before: ServiceProcess[];
  readonly after: ServiceProcess[];
  readonly setupSeconds: number;
}

const MODES: Record<
  string,
  { description: string; postgres: boolean; env: Record<string, string> }
> = {
  sqlite: {
    description: 'cloud as one process, every party on SQLite (`npm start` without DATABASE_URL)',
    postgres: false,
    env: {},
  },
  workers: {
    description: `cloud as ${availableParallelism()} worker processes behind one port (\`ZTV_CLOUD_WORKERS=auto\`), every party on PostgreSQL`,
    postgres: true,
    env: { ZTV_CLOUD_WORKERS: 'auto' },
  },
};

async function runMode(
  mode: string,
  levels: number[],
  levelS: number,
  sustainedN: number,
  sustainedS: number,
  slices: number,
): Promise<ModeResult> {
  const m = MODES[mode];
  if (!m) throw new Error(`unknown load mode ${mode} (${Object.keys(MODES).join(', ')})`);
  const t0 = performance.now();
  const t = await startTestFederation({ postgres: m.postgres, slices, env: m.env });
  try {
    const most = Math.max(...levels, sustainedN);
    const clinicians: TestClinician[] = [];
    for (let i = 0; i < most; i++) clinicians.push(await t.clinician('dr.bob'));
    await runLevel(t, clinicians.slice(0, 1), 1); // warm-up: one round
    const setupSeconds = (performance.now() - t0) / 1000;
    const before = federationProcesses(t.dir);
    const out: (LevelResult & { load: number })[] = [];
    for (const n of levels) {
      const r = await runLevel(t, clinicians.slice(0, n), levelS);
      out.push({ ...r, load: loadavg()[0]! });
      console.log(
        `load ${mode} ${n}: ${r.rounds} rounds, ${r.images} images, ${errorCount(r)} errors`,
      );
    }
    const s = await runLevel(t, clinicians.slice(0, sustainedN), sustainedS);
    console.log(
      `load ${mode} sustained ${sustainedN}: ${s.rounds} rounds, ${errorCount(s)} errors`,
    );
    return {
      mode,
      description: m.description,
      levels: out,
      sustained: { ...s, load: loadavg()[0]! },
      before,
      after: federationProcesses(t.dir),
      setupSeconds,
    };
  } finally {
    await t.close();
  }
}

const errorCount = (r: LevelResult): number => [...r.errors.values()].reduce((a, b) => a + b, 0);
const ms = (xs: number[]): string =>
  xs.length ? `${median(xs).toFixed(0)} / ${percentile(xs, 99).toFixed(0)}` : '—';

function levelRow(label: string, r: LevelResult & { load: number }): string {
  const errs = [...r.errors].map(([k, n]) => `${n} × ${k}`).join(', ');
  return `| ${label} | ${r.seconds.toFixed(0)} | ${r.rounds} | ${errs || '0'} | ${ms(r.consult)} | ${ms(r.redeem)} | ${ms(r.first)} | ${(r.images / r.seconds).toFixed(0)} | ${(r.bytes / 1e6 / r.seconds).toFixed(0)} | ${r.load.toFixed(1)} |`;
}

function memoryTable(before: ServiceProcess[], after: ServiceProcess[]): string {
  const names = [...new Set([...before, ...after].map((p) => p.name))];
  const rows = names.map((n) => {
    const b = before.filter((p) => p.name === n);
    const a = after.filter((p) => p.name === n);
    const sum = (ps: ServiceProcess[], k: 'rssMiB' | 'fds') => ps.reduce((s, p) => s + p[k], 0);
    const restarted = b.length && a.length && b[0]!.pid !== a[0]!.pid ? ' (restarted)' : '';
    return `| ${n}${restarted} | ${sum(b, 'rssMiB').toFixed(0)} | ${sum(a, 'rssMiB').toFixed(0)} | ${sum(b, 'fds')} | ${sum(a, 'fds')} |`;
  });
  return [
    '| process | RSS at start (MiB) | RSS at end (MiB) | fds at start | fds at end |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

export async function loadSection(scale = 1): Promise<{ markdown: string; defects: number }> {
  const modes = list(process.env.ZTV_LOAD_MODES, 'sqlite,workers');
  const levels = list(process.env.ZTV_LOAD_LEVELS, '1,5,10,25,50').map(Number);
  const levelS = Number(process.env.ZTV_LOAD_LEVEL_S ?? Math.max(5, Math.round(60 * scale)));
  const sustainedN = Number(process.env.ZTV_LOAD_SUSTAINED ?? 10);
  const sustainedS = Number(
    process.env.ZTV_LOAD_SUSTAINED_S ?? Math.max(10, Math.round(600 * scale)),
  );
  const slices = Number(process.env.ZTV_LOAD_SLICES ?? 150);
  const load0 = loadavg();
  const results: ModeResult[] = [];
  for (const mode of modes)
    results.push(await runMode(mode, levels, levelS, sustainedN, sustainedS, slices));
  // An error other than a clear 503 is a defect (a timeout, a cut stream, a refused session).
  const defects = results.reduce(
    (n, r) =>
      n +
      [...r.levels, r.sustained].reduce(
        (k, l) =>
          k + [...l.errors].filter(([kind]) => kind !== '503').reduce((a, [, c]) => a + c, 0),
        0,
      ),
    0,
  );
  const header =
    '| clients | s | rounds | errors | consult p50 / p99 (ms) | redemption p50 / p99 (ms) | first instance p50 / p99 (ms) | images/s | MB/s | load avg |\n| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |';
  const sections = results.map(
    (r) => `### ${r.mode}: ${r.description}

Setup (start, outsourcing ${slices} slices, ${Math.max(...levels, sustainedN)} devices enrolled, one warm-up round): ${r.setupSeconds.toFixed(0)} s.

${header}
${r.levels.map((l) => levelRow(String(l.clients), l)).join('\n')}
${levelRow(`**${r.sustained.clients} sustained**`, r.sustained)}

${r.levels
  .concat([r.sustained])
  .flatMap((l) => l.samples)
  .slice(0, 5)
  .map((s) => `- error seen: ${s.replace(/\|/g, '\\|')}`)
  .join('\n')}

Each service process, before the first level and after the sustained one:

${memoryTable(r.before, r.after)}
`,
  );
  const markdown = `## Sustained load

Concurrent clinicians, each a Node client with its own enrolled device driving the real protocol (\`bench/reliability/load-clients.ts\` on \`src/core/client\`): round after round, consult the CT study \`series/ct_chest_LIDC-IDRI-0314\` (${slices} slices) at the producer, open the key part, redeem the ticket at the cloud, retrieve every instance and open the first one verified. Each level runs ${levelS} s (a round under way at the end finishes and counts), then ${sustainedN} clients for ${sustainedS} s. Only loopback; every loop ends by itself. _consult_: ticket issued by the producer; _redemption_: ticket redeemed, traces signed, release logged; _first instance_: from the retrieval's request to the first traced instance in hand; p50 / p99 over the level's rounds. _errors_: rounds that failed, by kind — \`503\` is the cloud saying it is at capacity (\`Retry-After\`), anything else is a defect.

The clients run in the bench's own Node process on the same 2 cores as the services, and the machine was shared with other work during this run (load average ${load0[0]!.toFixed(1)} / ${load0[1]!.toFixed(1)} / ${load0[2]!.toFixed(1)} at the start; the last column gives it at each level's end): take the figures as lower bounds of what the services carry alone.

${sections.join('\n')}`;
  return { markdown, defects };
}
