// The supervisor on real processes (Node children that live or die as told): an unasked death is
// restarted with its count and how it ended, one asked for is not, and a process that keeps dying
// makes the supervisor give up once, with the sentence.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from './supervisor.ts';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill();
});

/** A Node process that runs `code`. */
function child(code: string): ChildProcess {
  const c = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  children.push(c);
  return c;
}
const LIVES = 'setInterval(() => {}, 1000)';

/** A supervisor as the launcher drives it: each started process is watched, starts are counted. */
function supervised(program: (env: Record<string, string>) => string, maxDeaths = 3) {
  const lines: string[] = [];
  const restarts: Record<string, string>[] = [];
  const gaveUp: string[] = [];
  const sup: Supervisor = new Supervisor(
    async (instance, env) => {
      restarts.push(env);
      const c = child(program(env));
      sup.watch(instance, c);
      return c;
    },
    (_instance, why) => {
      gaveUp.push(why);
    },
    { backoffMs: [20, 40], maxDeaths, windowMs: 60_000, log: (l) => lines.push(l) },
  );
  return { sup, lines, restarts, gaveUp };
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Supervisor', () => {
  it('restarts a process killed with SIGKILL, tells it so, and says it on the console', async () => {
    const s = supervised(() => LIVES);
    const first = child(LIVES);
    s.sup.watch('cloud', first);
    first.kill('SIGKILL');
    await until(() => s.sup.status().cloud?.state === 'up' && s.restarts.length === 1);
    expect(s.restarts).toEqual([{ ZTV_RESTARTS: '1', ZTV_LAST_EXIT: 'SIGKILL' }]);
    expect(s.sup.status().cloud).toMatchObject({
      state: 'up',
      restarts: 1,
      lastExit: { how: 'SIGKILL' },
    });
    await until(() => s.lines.length === 2);
    expect(s.lines[0]).toMatch(/^cloud died \(SIGKILL\); restarting it in 0\.02 s$/);
    expect(s.lines[1]).toBe('cloud is up again (restart 1)');
    expect(s.gaveUp).toEqual([]);
    s.sup.stop();
  });

  it('does not restart a process whose end was asked for', async () => {
    const s = supervised(() => LIVES);
    const c = child(LIVES);
    s.sup.watch('producer', c);
    s.sup.release('producer');
    c.kill('SIGKILL');
    await once(c, 'exit');
    await new Promise((r) => setTimeout(r, 200));
    expect(s.restarts).toEqual([]);
    expect(s.sup.status().producer?.state).toBe('stopped');
  });

  it('gives up, once, on a process that keeps dying', async () => {
    // Every start dies at once with exit code 3.
    const s = supervised(() => 'process.exit(3)', 2);
    s.sup.watch('cloud', child('process.exit(3)'));
    await until(() => s.gaveUp.length === 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(s.gaveUp).toEqual([
      'cloud died 3 times within 60 s (last: exit code 3); not restarting it',
    ]);
    expect(s.restarts.map((e) => e.ZTV_RESTARTS)).toEqual(['1', '2']);
    expect(s.sup.status().cloud).toMatchObject({ state: 'failed', restarts: 2 });
    expect(s.lines.at(-1)).toMatch(/not restarting it: stopping the federation$/);
  });
});
