/**
 * One opened study: from the ticket in hand to every instance verified and ready to draw. The ticket's
 * key part goes to every decode worker (each opens it with the device's non-extractable key, so image
 * keys exist only there), the cloud part is redeemed, the traced instances stream in and go to the
 * pool, the image on screen first. Keeps per instance the verdict, its badge, the restored frames for
 * the `zt:` loader and the served bytes (for export), per series the slice order and the integrity
 * summary, and the timings of each step as performance marks (`ztv:*`) for the benchmark.
 */
import type { ConsultAnswer, FederationClient } from '../../core/client/federation.ts';
import { MAX_FIRST } from '../../core/operations/redemption.ts';
import type { Verdict } from '../../core/protect/verdict.ts';
import type { OpenedInstance } from '../cornerstone/images.ts';
import type { WorkerPool } from '../pipeline/pool.ts';
import type { WorkerResponse } from '../pipeline/protocol.ts';
import { badgeModel, type BadgeModel } from '../ui/badge-model.ts';
import { sliceOrder } from './order.ts';

export type InstanceStatus = 'waiting' | 'received' | 'opened' | 'failed';

export interface InstanceView {
  /** The id the `zt:` loader knows it by: unique to this study session. */
  readonly ref: string;
  /** The cloud's image id (what the ticket names). */
  readonly cloudId: string;
  readonly series: string;
  readonly number: number;
  readonly position: number | null;
  status: InstanceStatus;
  opened?: OpenedInstance;
  badge?: BadgeModel;
  error?: string;
  /** The instance exactly as the cloud served it (sealed, traced, encrypted): what export hands out. */
  served?: Uint8Array;
}

export interface SeriesCounts {
  total: number;
  received: number;
  verified: number;
  tampered: number;
  unverifiable: number;
  /** Images with no verdict (not received, or their worker failed); each image counts once. */
  failed: number;
}

export interface SeriesView {
  readonly uid: string;
  readonly number: number;
  readonly description: string;
  readonly modality: string;
  /** Instance refs in display order (by position along the slice normal). */
  refs: string[];
  /** Whether the order rests on the verified headers (true once every slice is open) or on the listing. */
  orderVerified: boolean;
  readonly counts: SeriesCounts;
}

/** What went wrong for the whole study (the step, and the error as thrown). */
export interface StudyFailure {
  readonly step: 'keys' | 'redeem' | 'retrieve';
  readonly error: unknown;
}

export interface StudyDeps {
  readonly client: Pick<FederationClient, 'redeem' | 'retrieve'>;
  readonly pool: WorkerPool;
  readonly answer: ConsultAnswer;
  /** The device's ECDH private key (non-extractable) and certificate thumbprint. */
  readonly device: { readonly decryptionKey: CryptoKey; readonly deviceId: string };
  /**
   * A viewer that draws the study (and calls `shown`) sets this: from the first instance received
   * until its image is drawn, at most this many milliseconds, the stream waits and no other open
   * starts, so that the first image has the machine's cores (see `holdForFirstImage`).
   */
  readonly firstImageHoldMs?: number;
}

let studies = 0;

/** Gives the event loop a turn (rendering, input), with scheduler.yield() where the browser has it. */
function yieldToPage(): Promise<void> {
  // A message-channel task, not scheduler.yield(): that one runs before other pending tasks, which
  // would starve the renders and timers this is meant to let through.
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

const mark = (name: string, detail?: unknown): void => {
  performance.mark(`ztv:${name}`, detail === undefined ? undefined : { detail });
};

export class StudySession {
  readonly id = ++studies;
  readonly series: SeriesView[];
  readonly instances = new Map<string, InstanceView>();
  failure?: StudyFailure;
  done = false;
  /** Bytes received and worker milliseconds spent, for the progress bar and the benchmark. */
  bytes = 0;
  workerMs = 0;
  private readonly byCloudId = new Map<string, InstanceView>();
  private readonly waiters = new Map<
    string,
    { resolve: (i: OpenedInstance) => void; reject: (e: Error) => void }[]
  >();
  private readonly listeners = new Set<() => void>();
  private readonly abort = new AbortController();
  private focusRef?: string;
  private version = 0;
  private firstVerified = false;
  private closed = false;
  /** While the first image is awaited on screen: what ends the hold (see `holdForFirstImage`). */
  private releaseHold?: () => void;
  private holding?: Promise<void>;

  constructor(private readonly deps: StudyDeps) {
    this.series = deps.answer.series.map((s) => {
      const views = s.instances.map((i) => {
        const v: InstanceView = {
          ref: `${this.id}.${i.id}`,
          cloudId: i.id,
          series: s.uid,
          number: i.number,
          position: i.position,
          status: 'waiting',
        };
        this.instances.set(v.ref, v);
        this.byCloudId.set(i.id, v);
        return v;
      });
      return {
        uid: s.uid,
        number: s.number,
        description: s.description,
        modality: s.modality,
        refs: sliceOrder(views.map((v) => ({ ref: v.ref, number: v.number, z: v.position }))),
        orderVerified: false,
        counts: {
          total: views.length,
          received: 0,
          verified: 0,
          tampered: 0,
          unverifiable: 0,
          failed: 0,
        },
      };
    });
  }

  get answer(): ConsultAnswer {
    return this.deps.answer;
  }

  /** Changes to anything above: the UI re-renders (at most once per frame, see useStudy). */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get snapshot(): number {
    return this.version;
  }

  private changed(): void {
    this.version++;
    for (const fn of this.listeners) fn();
  }

  /** The viewer has drawn an image of this study: what the pipeline held back for it goes on. */
  shown(): void {
    this.releaseHold?.();
  }

  /** The opened instance, when the pipeline has it (the metadata provider asks synchronously). */
  known(ref: string): OpenedInstance | undefined {
    return this.instances.get(ref)?.opened;
  }

  /** The opened instance, waiting for it if needed (the `zt:` loader). */
  get(ref: string): Promise<OpenedInstance> {
    const v = this.instances.get(ref);
    if (!v) return Promise.reject(new Error(`this study has no image ${ref}`));
    if (v.opened) return Promise.resolve(v.opened);
    if (v.status === 'failed') return Promise.reject(new Error(v.error ?? 'the image failed'));
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(ref) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(ref, list);
    });
  }

  /** The clinician looks at `ref`: it and its neighbours go first in the decode queue. */
  focus(ref: string): void {
    if (this.focusRef === ref) return;
    this.focusRef = ref;
    this.deps.pool.reprioritise((req) =>
      req.kind === 'open' ? this.rank(this.byCloudId.get(req.ref)) : undefined,
    );
  }

  private rank(v: InstanceView | undefined): number | undefined {
    if (!v) return undefined;
    const focus = this.focusRef ? this.instances.get(this.focusRef) : undefined;
    const series = this.series.find((s) => s.uid === v.series)!;
    const idx = series.refs.indexOf(v.ref);
    if (!focus) return idx;
    if (focus.series !== v.series) return 100_000 + idx;
    return Math.abs(idx - series.refs.indexOf(focus.ref));
  }

  /** Ticket → keys opened in the workers → redeemed → streamed → every instance verified. */
  async start(): Promise<void> {
    const { pool, client, answer, device } = this.deps;
    mark('ticket');
    const keys = pool
      .broadcast({
        kind: 'ticket',
        keys: answer.ticket.keys,
        decryptionKey: device.decryptionKey,
        deviceId: device.deviceId,
      })
      .then((rs) => {
        const bad = rs.find((r) => r.kind !== 'ticket-opened');
        if (bad)
          throw bad.kind === 'failed'
            ? new TicketError(bad.message, bad.code)
            : new TicketError('the decode worker did not open the key part');
        mark('keys-opened');
      });
    // The key part is opened while the cloud redeems: neither waits for the other. The cloud
    // streams first what goes on screen first: the first series in display order, its first slice
    // (the stack's home) leading; the other series follow in the ticket's order.
    const redeemed = client.redeem(answer.ticket, this.firstWanted()).then((r) => {
      mark('redeemed');
      return r;
    });
    // Handled below, after the keys; until then a refusal must not surface as unhandled.
    redeemed.catch(() => undefined);
    try {
      await keys;
    } catch (e) {
      return this.fail('keys', e);
    }
    let redemption: string;
    try {
      redemption = (await redeemed).redemption;
    } catch (e) {
      return this.fail('redeem', e);
    }
    const opening: Promise<void>[] = [];
    try {
      for await (const r of client.retrieve(redemption, this.abort.signal)) {
        if (this.closed) break;
        if (this.bytes === 0) mark('first-byte');
        this.bytes += r.bytes.length;
        const v = this.byCloudId.get(r.id);
        if (!v || v.status !== 'waiting') continue; // not an image of this ticket, or a repeat
        opening.push(this.open(v, r.bytes));
        if (opening.length === 1) this.holdForFirstImage();
        // Buffered frames resolve as microtasks: let the page render between instances.
        await yieldToPage();
        if (this.holding) await this.holding;
      }
      mark('last-byte', { bytes: this.bytes });
    } catch (e) {
      if (!this.closed) this.fail('retrieve', e);
    }
    await Promise.all(opening);
    if (this.closed) return;
    for (const v of this.instances.values())
      if (v.status === 'waiting') this.settle(v, 'the cloud did not send this image');
    this.done = true;
    mark('all-opened', {
      instances: this.instances.size,
      bytes: this.bytes,
      workerMs: this.workerMs,
      workers: pool.size,
    });
    this.reorder();
    this.changed();
  }

  /** The images the redemption asks for first (`first`, at most MAX_FIRST): see `start`. */
  firstWanted(): string[] {
    const home = this.series[0];
    if (!home) return [];
    return home.refs.slice(0, MAX_FIRST).map((r) => this.instances.get(r)!.cloudId);
  }

  /**
   * The first image reaches the screen sooner with the machine to itself: on two cores the other
   * opens, the stream's frames and the cloud otherwise share the cores with its verification and its
   * draw. Until it is drawn (`shown`), or turns out not verified (the stack starts at the first verified
   * image, which needs the pool), or `firstImageHoldMs` pass, the stream waits and queued opens do not
   * start; opens already running finish. Measured: docs/viewer.md ("What we measured").
   */
  private holdForFirstImage(): void {
    const ms = this.deps.firstImageHoldMs ?? 0;
    if (ms <= 0) return;
    const holding = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.releaseHold = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.holding = undefined;
      this.releaseHold = undefined;
    });
    this.holding = holding;
    this.deps.pool.hold(holding);
  }

  private async open(v: InstanceView, bytes: Uint8Array): Promise<void> {
    v.status = 'received';
    this.seriesOf(v).counts.received++;
    this.changed();
    // The worker borrows the served bytes (transferred, not copied: docs/viewer.md says what the
    // copy cost) and hands them back unchanged; they stay here for export. A worker that dies keeps them: that image cannot be
    // exported, as it cannot be shown.
    const lent = (
      bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? bytes.buffer
        : bytes.slice().buffer
    ) as ArrayBuffer;
    const res = await this.deps.pool.run(
      { kind: 'open', ref: v.cloudId, bytes: lent },
      [lent],
      this.rank(v) ?? 0,
    );
    if ((res.kind === 'opened' || res.kind === 'failed') && res.served)
      v.served = new Uint8Array(res.served);
    if (this.closed) return;
    this.opened(v, res);
  }

  private opened(v: InstanceView, res: WorkerResponse): void {
    if (res.kind === 'failed') return this.settle(v, res.message);
    if (res.kind !== 'opened') return this.settle(v, 'the decode worker answered out of turn');
    this.workerMs += res.ms;
    const badge = badgeModel(res.verdict, { expectedTrace: this.deps.answer.trace });
    v.badge = badge;
    if (badge.state !== 'verified') this.releaseHold?.();
    const counts = this.seriesOf(v).counts;
    counts[badge.state]++;
    // Counted once: an image with a verdict but nothing to draw (a tampered one whose restoration
    // failed) is counted by its verdict, not again as failed.
    if (!res.meta || res.frames.length === 0)
      return this.settle(v, undisplayable(res.verdict), { counted: true });
    v.opened = {
      ref: v.ref,
      verdict: res.verdict,
      meta: res.meta,
      frames: res.frames,
      header: res.header,
    };
    v.status = 'opened';
    if (!this.firstVerified && badge.state === 'verified') {
      this.firstVerified = true;
      mark('first-verified', { workerMs: res.ms });
    }
    for (const w of this.waiters.get(v.ref) ?? []) w.resolve(v.opened);
    this.waiters.delete(v.ref);
    this.changed();
  }

  /** An instance that cannot be shown: the loader's waiters learn why. */
  private settle(v: InstanceView, error: string, opts: { counted?: boolean } = {}): void {
    this.releaseHold?.();
    v.status = 'failed';
    v.error = error;
    if (!opts.counted) this.seriesOf(v).counts.failed++;
    for (const w of this.waiters.get(v.ref) ?? []) w.reject(new Error(error));
    this.waiters.delete(v.ref);
    this.changed();
  }

  private fail(step: StudyFailure['step'], error: unknown): void {
    this.failure = { step, error };
    for (const v of this.instances.values())
      if (v.status === 'waiting')
        for (const w of this.waiters.get(v.ref) ?? [])
          w.reject(new Error('the study could not be retrieved'));
    this.waiters.clear();
    this.changed();
  }

  private seriesOf(v: InstanceView): SeriesView {
    return this.series.find((s) => s.uid === v.series)!;
  }

  /** Once every slice is open, the order rests on the verified headers rather than the listing. */
  private reorder(): void {
    for (const s of this.series) {
      const views = s.refs.map((r) => this.instances.get(r)!);
      if (views.some((v) => !v.opened)) continue;
      s.refs = sliceOrder(
        views.map((v) => ({
          ref: v.ref,
          number: v.opened!.meta.instanceNumber ?? v.number,
          z: null,
          ...(v.opened!.meta.imagePosition ? { position: v.opened!.meta.imagePosition } : {}),
          ...(v.opened!.meta.imageOrientation
            ? { orientation: v.opened!.meta.imageOrientation }
            : {}),
        })),
      );
      s.orderVerified = true;
    }
  }

  /** The auditor's view of an instance as served: container contents and signer chains. */
  async inspect(ref: string): Promise<Extract<WorkerResponse, { kind: 'inspected' }>> {
    const v = this.instances.get(ref);
    if (!v?.served) throw new Error('this image has not been received');
    const bytes = v.served.slice().buffer as ArrayBuffer;
    const r = await this.deps.pool.run({ kind: 'inspect', ref: v.cloudId, bytes }, [bytes], -1);
    if (r.kind !== 'inspected')
      throw new Error(r.kind === 'failed' ? r.message : 'the decode worker answered out of turn');
    return r;
  }

  /** Stops the transfer and the queued decoding; the workers forget this study's keys. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.releaseHold?.();
    this.abort.abort();
    this.deps.pool.cancelQueued();
    for (const list of this.waiters.values())
      for (const w of list) w.reject(new Error('the study was closed'));
    this.waiters.clear();
    await this.deps.pool.broadcast({ kind: 'forget' });
  }
}

/** The ticket's key part could not be opened on this device. */
export class TicketError extends Error {
  constructor(
    message: string,
    readonly code = 'ticket',
  ) {
    super(message);
    this.name = 'TicketError';
  }
}

function undisplayable(v: Verdict): string {
  return v.status === 'verified'
    ? 'the image has no pixels to display'
    : `the image cannot be displayed: ${v.summary}`;
}
