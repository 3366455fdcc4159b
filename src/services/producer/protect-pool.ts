/**
 * The producer's protect pool: protection is CPU work (docs/protection.md, "Performance"), so the
 * producer runs it in a bounded set of worker threads — by default one per core — and an outsourcing
 * of many instances uses every core while the HTTP and DICOM listeners stay responsive. Each thread
 * runs the same `protect` as the process itself (same output); the hospital's signing key never
 * leaves the parent thread: a thread asks it for the seal's one signature per image.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SigAlg, SigningKey } from '../../core/crypto/keys.ts';
import { ZtvError, type ErrorCode } from '../../core/errors.ts';
import type { Protected, ProtectOptions } from '../../core/protect/index.ts';

/** What a caller may choose per instance; the signer and the pseudonym key belong to the pool. */
export type PoolProtectOptions = Pick<
  ProtectOptions,
  'what' | 'keyBits' | 'format' | 'minTileSide'
>;

/** Messages to a pool thread. */
export type ToPool =
  | { type: 'init'; alg: SigAlg; spki: Uint8Array; pseudonymKey: Uint8Array }
  | { type: 'protect'; job: number; input: Uint8Array; options: PoolProtectOptions }
  | { type: 'signed'; id: number; signature: Uint8Array }
  | { type: 'sign-failed'; id: number; message: string };

/** Messages from a pool thread. */
export type FromPool =
  | { type: 'ready' }
  | { type: 'sign'; id: number; message: Uint8Array }
  | { type: 'done'; job: number; result: Protected }
  | {
      type: 'failed';
      job: number;
      error: { message: string; code?: ErrorCode; details?: Record<string, unknown> };
    };

export interface ProtectPoolOptions {
  /** The producer hospital's sealing key; it stays in this thread. */
  readonly signer: SigningKey;
  readonly pseudonymKey: Uint8Array;
  /** Worker threads (default: one per core, `os.availableParallelism()`). */
  readonly threads?: number;
}

interface Job {
  readonly id: number;
  readonly input: Uint8Array;
  readonly options: PoolProtectOptions;
  readonly resolve: (p: Protected) => void;
  readonly reject: (e: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  ready: boolean;
  job?: Job;
}

const ENTRY = new URL('./protect-pool.worker.mjs', import.meta.url);

/** The thread count from `ZTV_PROTECT_THREADS` (a whole number from 1 to 64), or the default. */
export function protectThreads(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new ZtvError(
      'bad-input',
      `ZTV_PROTECT_THREADS=${value}: give a whole number from 1 to 64`,
    );
  return n;
}

export class ProtectPool {
  readonly threads: number;
  private readonly pool: Thread[] = [];
  private readonly queue: Job[] = [];
  private nextJob = 0;
  private closed = false;

  constructor(private readonly opts: ProtectPoolOptions) {
    this.threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(this.threads) || this.threads < 1)
      throw new ZtvError('bad-input', 'a protect pool needs at least one thread');
  }

  /** Protects one instance in a pool thread: what `protect` returns, with the pool's signer. */
  protect(input: Uint8Array, options: PoolProtectOptions = {}): Promise<Protected> {
    if (this.closed) return Promise.reject(new ZtvError('bad-input', 'the protect pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextJob++, input, options, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops the threads; jobs not finished are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0))
      j.reject(new ZtvError('bad-input', 'the protect pool closed'));
    await Promise.all(this.pool.splice(0).map((t) => t.worker.terminate()));
  }

  private dispatch(): void {
    for (const t of this.pool) {
      if (this.queue.length === 0) return;
      if (t.ready && !t.job) this.run(t, this.queue.shift()!);
    }
    if (this.queue.length > 0 && this.pool.length < this.threads) this.spawn();
  }

  private run(t: Thread, job: Job): void {
    t.job = job;
    t.worker.ref();
    const m: ToPool = { type: 'protect', job: job.id, input: job.input, options: job.options };
    t.worker.postMessage(m);
  }

  private idle(t: Thread): void {
    t.job = undefined;
    // An idle thread does not keep the process alive.
    t.worker.unref();
    this.dispatch();
  }

  private spawn(): void {
    const worker = new Worker(ENTRY, { execArgv: [] });
    const t: Thread = { worker, ready: false };
    this.pool.push(t);
    const init: ToPool = {
      type: 'init',
      alg: this.opts.signer.alg,
      spki: this.opts.signer.publicKey.spki,
      pseudonymKey: this.opts.pseudonymKey,
    };
    worker.postMessage(init);
    worker.on('message', (m: FromPool) => this.onMessage(t, m));
    const lost = (why: string): void => {
      const at = this.pool.indexOf(t);
      if (at < 0) return;
      this.pool.splice(at, 1);
      t.job?.reject(new ZtvError('unsupported', `protection failed: ${why}`));
      // Jobs still queued get a fresh thread (unless no thread ever starts: then they fail too).
      if (!t.ready)
        for (const j of this.queue.splice(0))
          j.reject(new ZtvError('unsupported', `protection failed: ${why}`));
      else if (!this.closed) this.dispatch();
    };
    worker.on('error', (e) => lost(`a protect thread stopped (${e.message})`));
    worker.on('exit', (code) => lost(`a protect thread exited (${code})`));
  }

  private onMessage(t: Thread, m: FromPool): void {
    switch (m.type) {
      case 'ready':
        t.ready = true;
        this.idle(t);
        return;
      case 'sign':
        this.opts.signer.sign(m.message).then(
          (signature) =>
            t.worker.postMessage({ type: 'signed', id: m.id, signature } satisfies ToPool),
          (e: Error) =>
            t.worker.postMessage({
              type: 'sign-failed',
              id: m.id,
              message: e.message,
            } satisfies ToPool),
        );
        return;
      case 'done': {
        const job = t.job;
        if (job?.id === m.job) job.resolve(m.result);
        this.idle(t);
        return;
      }
      case 'failed': {
        const job = t.job;
        const error = new ZtvError(m.error.code ?? 'unsupported', m.error.message, m.error.details);
        if (m.job < 0) {
          // The thread could not set up: nothing it is given could succeed.
          t.worker.terminate().catch(() => undefined);
          return;
        }
        if (job?.id === m.job) job.reject(error);
        this.idle(t);
        return;
      }
    }
  }
}
