/**
 * What the stream worker does (`stream.ts` is the page's side): for each granted retrieval, the
 * core's `openRetrieval` — the cloud's answer fetched here, its frames opened strictly in order with
 * the session key it was handed, the instances cut out — posting each instance (its buffer
 * transferred) as the page asks for more, and at the end the frame number the session goes on from
 * with the failure, if any, as data. The key is dropped with the stream. Nothing is logged.
 */
import { failureData, openRetrieval } from '../../core/client/retrieval.ts';
import type { StreamNotice, StreamRequest } from './stream.ts';

interface Running {
  credit: number;
  readonly stop: AbortController;
  wake?: () => void;
}

export class StreamJob {
  private readonly running = new Map<number, Running>();

  /** `post` sends a notice to the page (with its transfer list); `f` is the worker's fetch. */
  constructor(
    private readonly post: (n: StreamNotice, transfer: Transferable[]) => void,
    private readonly f: typeof fetch,
  ) {}

  handle(req: StreamRequest): void {
    if (req.kind === 'retrieve') {
      void this.retrieve(req);
      return;
    }
    const r = this.running.get(req.id);
    if (!r) return;
    if (req.kind === 'more') r.credit += req.n;
    else r.stop.abort();
    r.wake?.();
  }

  private async retrieve(req: Extract<StreamRequest, { kind: 'retrieve' }>): Promise<void> {
    const r: Running = { credit: req.window, stop: new AbortController() };
    this.running.set(req.id, r);
    let seq = req.grant.seq;
    let done: StreamNotice;
    try {
      const instances = openRetrieval(req.grant, req.base, (s) => (seq = s), this.f, r.stop.signal);
      for await (const got of instances) {
        while (r.credit <= 0 && !r.stop.signal.aborted)
          await new Promise<void>((w) => (r.wake = w));
        r.wake = undefined;
        if (r.stop.signal.aborted) throw r.stop.signal.reason;
        r.credit--;
        const bytes =
          got.bytes.byteOffset === 0 && got.bytes.byteLength === got.bytes.buffer.byteLength
            ? got.bytes
            : got.bytes.slice();
        const buffer = bytes.buffer as ArrayBuffer;
        this.post({ kind: 'instance', id: req.id, ref: got.id, bytes: buffer }, [buffer]);
      }
      done = { kind: 'done', id: req.id, seq };
    } catch (e) {
      done = { kind: 'done', id: req.id, seq, failure: failureData(e) };
    } finally {
      this.running.delete(req.id);
    }
    this.post(done, []);
  }
}
