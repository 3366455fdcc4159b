/**
 * A pool of decode workers: requests queue by priority (the image on screen first) and go to the next
 * idle worker; configuration (trust anchors, image keys) is broadcast to every worker. Works with any
 * worker-like object, so tests can run the same job code in-process.
 */
import type { WorkerRequest, WorkerResponse } from './protocol.ts';

export interface WorkerLike {
  postMessage(message: WorkerRequest, transfer: Transferable[]): void;
  onmessage: ((e: { data: WorkerResponse }) => void) | null;
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

/** Workers to start: the cores left after the main thread, at least one. */
export const defaultPoolSize = (cores: number | undefined): number => Math.max(1, (cores ?? 2) - 1);

export class WorkerPool {
  private readonly workers: WorkerLike[] = [];
  private readonly busy = new Set<WorkerLike>();
  private readonly queue: Pending[] = [];
  /** Requests for one particular worker (broadcasts), served before the shared queue. */
  private readonly pinned = new Map<WorkerLike, Pending[]>();
  private readonly waiting = new Map<number, Pending>();
  private nextId = 1;
  private seq = 0;

  constructor(factory: () => WorkerLike, size: number) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = factory();
      w.onmessage = (e) => this.done(w, e.data);
      this.workers.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Sends a request to every worker (trust, keys, forget) and resolves when all have answered. */
  async broadcast(req: Request): Promise<WorkerResponse[]> {
    return Promise.all(this.workers.map((w) => this.enqueue(req, [], -Infinity, w)));
  }

  /** Runs one request on the next idle worker; lower priority values run first. */
  run(req: Request, transfer: Transferable[] = [], priority = 0): Promise<WorkerResponse> {
    return this.enqueue(req, transfer, priority);
  }

  terminate(): void {
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
      if (pin) {
        const list = this.pinned.get(pin) ?? [];
        list.push(p);
        this.pinned.set(pin, list);
      } else {
        this.queue.push(p);
        this.queue.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
      }
      this.pump();
    });
  }

  private pump(): void {
    for (const w of this.workers) {
      if (this.busy.has(w)) continue;
      const next = this.pinned.get(w)?.shift() ?? this.queue.shift();
      if (!next) continue;
      this.busy.add(w);
      this.waiting.set(next.req.id, next);
      w.postMessage(next.req, next.transfer);
    }
  }

  private done(w: WorkerLike, res: WorkerResponse): void {
    this.busy.delete(w);
    const p = this.waiting.get(res.id);
    this.waiting.delete(res.id);
    p?.resolve(res);
    this.pump();
  }
}
