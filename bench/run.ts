/**
 * Runs the benchmarks (all of them, or those named: `npm run bench -- protect policy`), each in its own
 * process pinned to one core when `taskset` exists, so figures are per core and runs do not interfere.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR } from './lib.ts';

const all = readdirSync(BENCH_DIR)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f))
  .map((f) => f.slice(0, -3));
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(64);
}
const pin = existsSync('/usr/bin/taskset') ? ['taskset', '-c', '0'] : [];
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  console.log(`\n== ${name} ==`);
  const cmd = [...pin, process.execPath, '--import', 'tsx', join(BENCH_DIR, `${name}.ts`)];
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
  });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
