/**
 * Supervision of the federation's processes: a service that dies without being asked to (a crash, a
 * `kill -9`, the out-of-memory killer) is started again after a back-off that grows with each death,
 * and says so on the console; one that keeps dying — more than `maxDeaths` deaths within `windowMs` —
 * is not restarted again, and the federation is stopped cleanly instead of running without it. What
 * the supervisor knows (each process's state, its restarts, how it last ended) is `status()`, and each
 * restarted process is told its count and its predecessor's end (`ZTV_RESTARTS`, `ZTV_LAST_EXIT`), which
 * its `GET /` reports (docs/services.md, "Supervision").
 */
import type { ChildProcess } from 'node:child_process';

export interface SupervisorOptions {
  /** Waits before each restart: the n-th consecutive death waits the n-th (the last repeats). */
  readonly backoffMs?: readonly number[];
  /** Deaths within `windowMs` after which the supervisor gives up on a process. */
  readonly maxDeaths?: number;
  readonly windowMs?: number;
  /** Where the supervisor's sentences go (the console by default). */
  readonly log?: (line: string) => void;
}

export type ProcessState = 'up' | 'restarting' | 'failed' | 'stopped';

export interface ProcessStatus {
  readonly state: ProcessState;
  readonly restarts: number;
  /** How the process last ended unasked (`SIGKILL`, `exit code 1`), and when (ISO 8601). */
  readonly lastExit?: { readonly how: string; readonly at: string };
}

export const DEFAULT_BACKOFF_MS: readonly number[] = [250, 1000, 2000, 4000, 8000];

/** How a process ended, in words. */
export const endOf = (code: number | null, signal: NodeJS.Signals | null): string =>
  signal ?? `exit code ${code ?? '?'}`;

interface Watched {
  child?: ChildProcess;
  state: ProcessState;
  restarts: number;
  deaths: number[];
  lastExit?: { how: string; at: string };
  timer?: NodeJS.Timeout;
}

export class Supervisor {
  private readonly watched = new Map<string, Watched>();
  private readonly backoff: readonly number[];
  private readonly maxDeaths: number;
  private readonly windowMs: number;
  private readonly log: (line: string) => void;
  private stopped = false;

  /**
   * `restart` starts the process again (resolving once it listens), given the environment that tells
   * it its restarts; `giveUp` is called once, with the sentence, when a process keeps dying.
   */
  constructor(
    private readonly restart: (
      instance: string,
      env: Record<string, string>,
    ) => Promise<ChildProcess>,
    private readonly giveUp: (instance: string, why: string) => Promise<void> | void,
    opts: SupervisorOptions = {},
  ) {
    this.backoff = opts.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.maxDeaths = opts.maxDeaths ?? 5;
    this.windowMs = opts.windowMs ?? 60_000;
    this.log = opts.log ?? ((line) => console.log(line));
  }

  /** Watches a process that now listens (each the launcher starts): its unasked death is a restart. */
  watch(instance: string, child: ChildProcess): void {
    const w = this.watched.get(instance) ?? { state: 'up', restarts: 0, deaths: [] };
    w.child = child;
    w.state = 'up';
    this.watched.set(instance, w);
    child.once('exit', (code, signal) => {
      if (w.child !== child || w.state !== 'up' || this.stopped) return;
      this.died(instance, w, endOf(code, signal));
    });
  }

  /** The next end of this process is asked for (a kill by the tests, a stop): no restart. */
  release(instance: string): void {
    const w = this.watched.get(instance);
    if (!w) return;
    clearTimeout(w.timer);
    w.state = 'stopped';
    w.child = undefined;
  }

  /** Stops supervising everything (the federation is stopping). */
  stop(): void {
    this.stopped = true;
    for (const instance of this.watched.keys()) this.release(instance);
  }

  status(): Record<string, ProcessStatus> {
    return Object.fromEntries(
      [...this.watched].map(([instance, w]) => [
        instance,
        {
          state: w.state,
          restarts: w.restarts,
          ...(w.lastExit ? { lastExit: { ...w.lastExit } } : {}),
        },
      ]),
    );
  }

  private died(instance: string, w: Watched, how: string): void {
    const now = Date.now();
    w.lastExit = { how, at: new Date(now).toISOString() };
    w.deaths = [...w.deaths.filter((t) => now - t < this.windowMs), now];
    if (w.deaths.length > this.maxDeaths) {
      w.state = 'failed';
      const why = `${instance} died ${w.deaths.length} times within ${Math.round(this.windowMs / 1000)} s (last: ${how}); not restarting it`;
      this.log(`${why}: stopping the federation`);
      void Promise.resolve(this.giveUp(instance, why)).catch(() => undefined);
      return;
    }
    const wait = this.backoff[Math.min(w.deaths.length - 1, this.backoff.length - 1)] ?? 0;
    w.state = 'restarting';
    this.log(
      `${instance} died (${how}); restarting it in ${(wait / 1000).toFixed(wait < 1000 ? 2 : 0)} s`,
    );
    w.timer = setTimeout(() => {
      if (w.state !== 'restarting' || this.stopped) return;
      w.restarts++;
      this.restart(instance, {
        ZTV_RESTARTS: String(w.restarts),
        ZTV_LAST_EXIT: how,
      }).then(
        (child) => {
          // The launcher watches every process it starts: this one, unless asked otherwise since.
          if (w.child === child && !this.stopped)
            this.log(`${instance} is up again (restart ${w.restarts})`);
        },
        (e: unknown) => {
          if (w.state !== 'restarting' || this.stopped) return;
          // A start that fails is one more death, with its own back-off.
          this.died(instance, w, `failed to start: ${(e as Error).message.split('\n')[0]}`);
        },
      );
    }, wait);
    w.timer.unref?.();
  }
}
