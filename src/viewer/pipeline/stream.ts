/**
 * The stream worker, as the page sees it: a retrieval's sealed session frames are fetched and opened
 * off the page's thread (issue 15, decision 4). For one stream the session grants the worker its
 * sealed request, its receive key (a non-extractable CryptoKey, posted as such: its bytes exist
 * nowhere) and the next frame number (`SessionClient.streamWith`); the worker runs the core's
 * `openRetrieval` — frames opened strictly in order, the multipart body cut into instances — and
 * posts each instance, its buffer transferred, then the frame number the session goes on from. The
 * session holds its turn meanwhile. The page pulls: the worker is at most `WINDOW` instances ahead,
 * so a page that waits (the first image's hold) stops the transfer as before.
 */
import {
  failureFrom,
  type FailureData,
  type RetrievalOpener,
  type Retrieved,
} from '../../core/client/retrieval.ts';
import type { StreamGrant } from '../../core/session/protocol.ts';

/** Instances the worker may post before the page has taken them. */
export const WINDOW = 2;

export type StreamRequest =
  | {
      readonly kind: 'retrieve';
      readonly id: number;
      readonly grant: StreamGrant;
      readonly base: string;
      readonly window: number;
    }
  /** The page took `n` more instances: the worker may post as many more. */
  | { readonly kind: 'more'; readonly id: number; readonly n: number }
  /** The page left the stream, or the study was closed: the transfer is aborted. */
  | { readonly kind: 'stop'; readonly id: number };

export type StreamNotice =
  | {
      readonly kind: 'instance';
      readonly id: number;
      readonly ref: string;
      readonly bytes: ArrayBuffer;
    }
  /** The stream ended (`failure` absent: after its final frame); `seq` is the next frame due. */
  | {
      readonly kind: 'done';
      readonly id: number;
      readonly seq: number;
      readonly failure?: FailureData;
    };

export interface StreamWorkerLike {
  postMessage(message: StreamRequest): void;
  onmessage: ((e: { data: StreamNotice }) => void) | null;
  onerror?: ((e: { message?: string }) => void) | null;
  terminate(): void;
}

/** One stream's notices as they arrive, read in order; a crashed worker fails the reader. */
class Inbox {
  private readonly items: StreamNotice[] = [];
  private wake?: () => void;
  private crash?: Error;

  push(n: StreamNotice): void {
    this.items.push(n);
    this.wake?.();
  }

  fail(e: Error): void {
    this.crash = e;
    this.wake?.();
  }

  async next(): Promise<StreamNotice> {
    for (;;) {
      const n = this.items.shift();
      if (n) return n;
      if (this.crash) throw this.crash;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

/** The page's end of the stream worker: `open` is the FederationClient's retrieval opener. */
export class StreamWorker {
  private worker?: StreamWorkerLike;
  private readonly inboxes = new Map<number, Inbox>();
  private nextId = 1;

  /** `factory` starts the worker (again after it died). */
  constructor(private readonly factory: () => StreamWorkerLike) {}

  /** Starts the worker now (it also starts at the first retrieval, and again after it died). */
  start(): StreamWorkerLike {
    if (this.worker) return this.worker;
    const w = this.factory();
    w.onmessage = (e) => this.inboxes.get(e.data.id)?.push(e.data);
    w.onerror = (e) => {
      // Its streams cannot say how many frames they opened: their sessions are out of step.
      const failure = new Error(`the stream worker failed: ${e.message ?? 'no reason given'}`);
      for (const inbox of this.inboxes.values()) inbox.fail(failure);
      if (this.worker === w) this.worker = undefined;
      w.terminate();
    };
    this.worker = w;
    return w;
  }

  readonly open: RetrievalOpener = (grant, base, opened, signal) =>
    this.retrieve(grant, base, opened, signal);

  private async *retrieve(
    grant: StreamGrant,
    base: string,
    opened: (seq: number) => void,
    signal?: AbortSignal,
  ): AsyncGenerator<Retrieved> {
    const w = this.start();
    const id = this.nextId++;
    const inbox = new Inbox();
    this.inboxes.set(id, inbox);
    const stop = () => w.postMessage({ kind: 'stop', id });
    signal?.addEventListener('abort', stop, { once: true });
    let ended = false;
    try {
      w.postMessage({ kind: 'retrieve', id, grant, base, window: WINDOW });
      if (signal?.aborted) stop();
      for (;;) {
        const n = await inbox.next();
        if (n.kind === 'instance') {
          yield { id: n.ref, bytes: new Uint8Array(n.bytes) };
          w.postMessage({ kind: 'more', id, n: 1 });
          continue;
        }
        ended = true;
        opened(n.seq);
        if (n.failure) throw failureFrom(n.failure);
        return;
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      if (!ended) {
        // The page left early: the worker stops, and says where the session goes on from.
        stop();
        try {
          for (let n = await inbox.next(); ; n = await inbox.next())
            if (n.kind === 'done') {
              opened(n.seq);
              break;
            }
        } catch {
          // The worker died: no frame count, and the session knows it is out of step.
        }
      }
      this.inboxes.delete(id);
    }
  }

  /** Stops the worker; streams still running fail (their sessions out of step). */
  terminate(): void {
    const w = this.worker;
    this.worker = undefined;
    w?.terminate();
    for (const inbox of this.inboxes.values())
      inbox.fail(new Error('the stream worker was stopped'));
  }
}
