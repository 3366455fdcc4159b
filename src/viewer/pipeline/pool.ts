/**
 * A pool of decode workers: requests queue by priority (the image on screen first) and go to the next
 * idle worker; configuration (trust, the ticket's key part) is broadcast to every worker. A worker that
 * dies fails its request instead of leaving it pending; queued requests can be dropped when the
 * clinician closes a study. Works with any worker-like object, so tests can run the same job code
 * in-process.
 */
import type { WarmedNotice, WorkerRequest, WorkerResponse } from './protocol.ts';

export interface WorkerLike {
  postMessage(message: WorkerRequest, transfer: Transferable[]): void;
  onmessage: ((e: { data: WorkerResponse | WarmedNotice }) => void) | null;
  onerror?: ((e: { message?: string }) => void) | null;
  terminate(): void;
}

/** A request before the pool numbers it. */
export type Request = WorkerRequest extends infer R
  ? R extends unknown
    ? Omit<R, 'id'>
    : never
  : never;

interface Pending {
  readonly req: WorkerRequest;
  readonly transfer: Transferable[];
  readonly priority: number;
  readonly seq: number;
  resolve(r: WorkerResponse): void;
}

/**
 * Workers to start: one per core, at least one. The page's own thread is not reserved a core: the
 * benchmark measured the whole series faster this way on two cores (bench/reports/viewer.md). The
 * viewer runs no other worker pool (it never initialises Cornerstone's dicom-image-loader).
 */
export const defaultPoolSize = (cores: number | undefined): number => Math.max(1, cores ?? 2);

const failed = (p: Pending, code: string, message: string): WorkerResponse => ({
  kind: 'failed',
  id: p.req.id,
  ...('ref' in p.req ? { ref: p.req.ref } : {}),
  code,
  message,
});

export class WorkerPool {
  private readonly workers: WorkerLike[] = [];
  private readonly busy = new Map<WorkerLike, Pending>();
  private readonly queue: Pending[] = [];
  /** Requests for one particular worker (broadcasts), served before the shared queue. */
  private readonly pinned = new Map<WorkerLike, Pending[]>();
  private nextId = 1;
  private seq = 0;
  /** While set, queued requests wait (broadcasts and running requests go on): see `hold`. */
  private held?: Promise<void>;
  /** Each worker's warm-up verdict status, as its notice arrives ("verified" when healthy). */
  readonly warmUps: string[] = [];

  constructor(factory: () => WorkerLike, size: number) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = factory();
      // A warm-up notice answers nothing (its buffers were transferred only to be let go).
      w.onmessage = (e) => {
        if (e.data.kind === 'warmed') this.warmUps.push(e.data.status);
        else this.done(w, e.data);
      };
      w.onerror = (e) => this.crashed(w, e.message ?? 'the decode worker failed');
      this.workers.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Requests waiting for a worker (not those running). */
  get queued(): number {
    return this.queue.length;
  }

  /** Sends a request to every worker (trust, ticket, forget) and resolves when all have answered. */
  async broadcast(req: Request): Promise<WorkerResponse[]> {
    return Promise.all(this.workers.map((w) => this.enqueue(req, [], -Infinity, w)));
  }

  /** Runs one request on the next idle worker; lower priority values run first. */
  run(req: Request, transfer: Transferable[] = [], priority = 0): Promise<WorkerResponse> {
    return this.enqueue(req, transfer, priority);
  }

  /** Changes the priority of queued requests (the clinician scrolled): `rank(req)` gives the new one. */
  reprioritise(rank: (req: WorkerRequest) => number | undefined): void {
    const q = this.queue.map((p) => ({ ...p, priority: rank(p.req) ?? p.priority }));
    this.queue.length = 0;
    this.queue.push(...q.sort((a, b) => a.priority - b.priority || a.seq - b.seq));
  }

  /**
   * Starts no queued request until `until` settles (requests already running finish; broadcasts
   * still go): the page gets the machine's cores for a moment, e.g. to draw the first image.
   */
  hold(until: Promise<unknown>): void {
    const held = until.then(
      () => undefined,
      () => undefined,
    );
    this.held = held;
    void held.then(() => {
      if (this.held !== held) return;
      this.held = undefined;
      this.pump();
    });
  }

  /** Drops every queued request (they resolve as cancelled); running ones finish. */
  cancelQueued(): void {
    for (const p of this.queue.splice(0))
      p.resolve(failed(p, 'cancelled', 'the request was cancelled'));
  }

  terminate(): void {
    this.cancelQueued();
    for (const [w, p] of this.busy) {
      p.resolve(failed(p, 'terminated', 'the decode workers were stopped'));
      this.busy.delete(w);
    }
    for (const list of this.pinned.values())
      for (const p of list.splice(0))
        p.resolve(failed(p, 'terminated', 'the decode workers were stopped'));
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }

  private enqueue(
    req: Request,
    transfer: Transferable[],
    priority: number,
    pin?: WorkerLike,
  ): Promise<WorkerResponse> {
    return new Promise((resolve) => {
      const p: Pending = {
        req: { ...req, id: this.nextId++ } as WorkerRequest,
        transfer,
        priority,
        seq: this.seq++,
        resolve,
      };
      if (this.workers.length === 0) {
        resolve(failed(p, 'terminated', 'the decode workers were stopped'));
        return;
      }
      if (pin) {
        const list = this.pinned.get(pin) ?? [];
        list.push(p);
        this.pinned.set(pin, list);
      } else {
        // Insert in order (stable for equal priorities) rather than re-sorting the whole queue.
        let i = this.queue.length;
        while (i > 0 && this.queue[i - 1]!.priority > priority) i--;
        this.queue.splice(i, 0, p);
      }
      this.pump();
    });
  }

  private pump(): void {
    for (const w of this.workers) {
      if (this.busy.has(w)) continue;
      const next = this.pinned.get(w)?.shift() ?? (this.held ? undefined : this.queue.shift());
      if (!next) continue;
      this.busy.set(w, next);
      w.postMessage(next.req, next.transfer);
    }
  }

  private done(w: WorkerLike, res: WorkerResponse): void {
    const p = this.busy.get(w);
    this.busy.delete(w);
    if (p && p.req.id === res.id) p.resolve(res);
    this.pump();
  }

  /**
   * A worker failed outside a request's handling (its script did not load, or it ran out of memory):
   * it is taken out of the pool with what it was doing; with no worker left, everything fails.
   */
  private crashed(w: WorkerLike, message: string): void {
    const p = this.busy.get(w);
    this.busy.delete(w);
    p?.resolve(failed(p, 'worker', message));
    for (const q of this.pinned.get(w)?.splice(0) ?? []) q.resolve(failed(q, 'worker', message));
    this.pinned.delete(w);
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    w.terminate();
    if (this.workers.length === 0)
      for (const q of this.queue.splice(0)) q.resolve(failed(q, 'worker', message));
    this.pump();
  }
}
