/** Shared helpers of the benchmarks: machine description, statistics, report files. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  let mem = '';
  try {
    const kb = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
    mem = `, ${(kb / 1024 / 1024).toFixed(0)} GiB`;
  } catch {
    /* not Linux */
  }
  return `${cpu}, ${cpus().length} cores${mem}; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}`;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/** The figures `openssl speed` gives for an algorithm at 16 KiB blocks, in MB/s. */
export function opensslSpeed(alg: string): string {
  try {
    const out = execFileSync('openssl', ['speed', '-evp', alg, '-seconds', '1'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const line = out.split('\n').find((l) => l.trim().toLowerCase().startsWith(alg.toLowerCase()));
    const cols = line?.trim().split(/\s+/) ?? [];
    const k16 = cols[cols.length - 2]; // 16384-byte column, in 1000s of bytes per second
    return k16 ? `${(Number(k16.replace(/k$/, '')) / 1000).toFixed(0)} MB/s` : 'unavailable';
  } catch {
    return 'unavailable';
  }
}

/**
 * Write a Markdown file as Prettier would: `npm run lint` checks every file, reports and docs included,
 * so a report written raw fails CI the next time it is regenerated. Returns the formatted text.
 */
export async function writeMarkdown(path: string, markdown: string): Promise<string> {
  const options = (await prettier.resolveConfig(path)) ?? {};
  const formatted = await prettier.format(markdown, { ...options, parser: 'markdown' });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, formatted);
  return formatted;
}

/** Write bench/reports/NAME.md (formatted); returns its path. */
export async function writeReport(name: string, markdown: string): Promise<string> {
  const path = join(BENCH_DIR, 'reports', `${name}.md`);
  await writeMarkdown(path, markdown);
  return path;
}

/**
 * `npm run bench` pins each benchmark to one core with a one-thread libuv pool. A benchmark of the
 * federation or of the browser needs the machine (services, browser, workers), and so do the services
 * it spawns, which inherit the environment: this re-runs the process on every core with Node's default
 * pool of 4 threads and exits with its status; once widened, it returns.
 */
export function widenToAllCores(): void {
  if (availableParallelism() >= cpus().length || process.env.ZTV_BENCH_WIDENED) return;
  const r = spawnSync(
    'taskset',
    [
      '-c',
      `0-${cpus().length - 1}`,
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, ZTV_BENCH_WIDENED: '1', UV_THREADPOOL_SIZE: '4' } },
  );
  process.exit(r.status ?? 1);
}

/**
 * Milliseconds all the machine's cores have been busy so far (every process: browser, services,
 * the benchmark itself), from the kernel's per-CPU counters: the difference over an interval is the
 * CPU work done in it, which tells a load bound by the cores from one waiting on something else.
 */
export function machineBusyMs(): number {
  return cpus().reduce(
    (sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq,
    0,
  );
}
