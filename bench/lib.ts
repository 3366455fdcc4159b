/** Shared helpers of the benchmarks: machine description, statistics, report files. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Clock ticks per second of /proc's CPU times (USER_HZ). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU milliseconds a process (all its threads) has used so far, from /proc; NaN where unreadable. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Which part of the benchmark a thread works for, from its process's command line and its name. */
function partOf(pid: number, cmdline: string, thread: string): string | undefined {
  if (cmdline.includes('chromium')) {
    const type = /--type=([\w-]+)/.exec(cmdline)?.[1] ?? 'browser';
    if (type !== 'renderer') return type === 'gpu-process' ? 'GPU process' : 'browser, network';
    if (thread.startsWith('DedicatedWorker')) return 'page: workers';
    if (thread.startsWith('ThreadPool'))
      return 'page: thread pool (V8 GC and compilers, Blink tasks)';
    if (thread === 'chromium' || thread.startsWith('CrRendererMain')) return 'page: main thread';
    return 'page: other threads';
  }
  const service = /services\/(\w+)\/main\.ts/.exec(cmdline)?.[1];
  if (service) return `service: ${service}`;
  if (pid === process.pid) return 'this benchmark (file server, Playwright)';
  return undefined;
}

/**
 * Core-milliseconds each part of the benchmark has used so far, per thread from /proc (Linux): the
 * page's main thread, its workers, the browser's other processes, each service. Differences over an
 * interval say where the machine's work went; what is not listed (the kernel, other processes) is
 * the rest of `machineBusyMs`. Empty where /proc is not there.
 */
export function cpuByPart(): Map<string, number> {
  const out = new Map<string, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (!cmdline.includes('chromium') && !cmdline.includes('node')) continue;
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const part = partOf(Number(pid), cmdline, name);
        if (!part) continue;
        // Fields after the name: state is the first; utime and stime are the 12th and 13th.
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const ms = ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
        out.set(part, (out.get(part) ?? 0) + ms);
      }
    } catch {
      // The process or thread ended while it was read.
    }
  }
  return out;
}

/** `after − before`, part by part. */
export function cpuSince(
  before: Map<string, number>,
  after: Map<string, number>,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}
