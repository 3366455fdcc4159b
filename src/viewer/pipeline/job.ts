/**
 * What a decode worker does, as a plain message handler (the worker file only wires it to
 * `self.onmessage`; tests call it directly): keep the federation's trust (pinned root, chains, CRLs,
 * trust group) and the image keys of this session in memory — the keys opened here from the ticket's
 * key part — and open protected images into display-ready frames.
 */
import { ticketProducerResolver } from '../../core/ticket/producer.ts';
import type { DataSet } from '../../core/dicom/dataset.ts';
import { tagName } from '../../core/dicom/dictionary.ts';
import { T } from '../../core/dicom/tags.ts';
import { TEXT_VRS } from '../../core/dicom/dataset.ts';
import { isZtvError } from '../../core/errors.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import {
  inspectProtected,
  openProtected,
  traceRootCache,
  type SignerResolver,
  type TraceRootCache,
} from '../../core/protect/index.ts';
import { openKeysPart, type ProducerLookup } from '../../core/ticket/ticket.ts';
import { displayFrame, displayMeta, type DisplayPixels } from './display.ts';
import type {
  FrameOut,
  PixelKind,
  TagRow,
  WarmedNotice,
  WorkerRequest,
  WorkerResponse,
} from './protocol.ts';
import { chainReport, memoResolver, viewOf } from './trust.ts';
import { openWarmUp } from './warmup.ts';
import { keyIdOf } from '../../core/crypto/keys.ts';
import { toHex } from '../../core/bytes.ts';
import { readOrganisation } from '../../core/pki/extensions.ts';
import { OID } from '../../core/pki/oids.ts';

export interface Reply {
  readonly message: WorkerResponse;
  readonly transfer: ArrayBuffer[];
}

/** Posts a worker's unasked notice (the worker file: `self.postMessage`). */
export type Announce = (notice: WarmedNotice, transfer: ArrayBuffer[]) => void;

/**
 * Opens of the synthetic image in the warm-up; the first one's answer is posted (`WarmedNotice`), as
 * a real image's is, because V8 discards a worker's optimised typed-array code at its first such
 * transfer (docs/viewer.md, "What was done for those figures").
 */
const WARM_OPENS = 5;

const kindOf = (p: DisplayPixels): PixelKind =>
  p instanceof Int16Array
    ? 'int16'
    : p instanceof Uint16Array
      ? 'uint16'
      : p instanceof Float32Array
        ? 'float32'
        : 'uint8';

const tagText = (t: number): string => {
  const h = (t >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
};

/** Longest text value the tag browser is sent (it wraps what it shows; beyond this, an ellipsis). */
const MAX_VALUE = 1024;

/**
 * The restored header as rows for the tag browser (long values shortened, binary shown by size); a
 * sequence is followed by a row per item (FFFE,E000) and the item's elements, one level deeper each.
 */
export function headerRows(ds: DataSet, depth = 0): TagRow[] {
  const rows: TagRow[] = [];
  for (const el of ds.elements()) {
    if (el.tag === T.PixelData || el.tag === T.FloatPixelData) {
      rows.push({
        tag: tagText(el.tag),
        vr: el.vr,
        name: tagName(el.tag),
        value: `(${el.value?.length ?? 0} bytes of pixel data)`,
        depth,
      });
      continue;
    }
    if (el.items) {
      rows.push({
        tag: tagText(el.tag),
        vr: 'SQ',
        name: tagName(el.tag),
        value: `${el.items.length} item(s)`,
        depth,
      });
      if (depth < 8)
        el.items.forEach((item, i) => {
          rows.push({
            tag: '(FFFE,E000)',
            vr: '',
            name: 'Item',
            value: `item ${i + 1} of ${el.items!.length}`,
            depth: depth + 1,
          });
          rows.push(...headerRows(item, depth + 2));
        });
      continue;
    }
    const v = el.value ?? new Uint8Array(0);
    const text = TEXT_VRS.has(el.vr)
      ? new TextDecoder('latin1').decode(v).replace(/[\0 ]+$/, '')
      : undefined;
    const value =
      text !== undefined
        ? text.length > MAX_VALUE
          ? `${text.slice(0, MAX_VALUE)}…`
          : text
        : ['US', 'SS', 'UL', 'SL', 'FL', 'FD'].includes(el.vr)
          ? String(ds.number(el.tag) ?? numberOf(el.vr, v))
          : `(${v.length} bytes)`;
    rows.push({ tag: tagText(el.tag), vr: el.vr, name: tagName(el.tag), value, depth });
  }
  return rows;
}

function numberOf(vr: string, v: Uint8Array): string {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (vr === 'FL' && v.length >= 4) return String(dv.getFloat32(0, true));
  if (vr === 'FD' && v.length >= 8) return String(dv.getFloat64(0, true));
  return `(${v.length} bytes)`;
}

const failure = (id: number, e: unknown, ref?: string): Reply => ({
  message: {
    kind: 'failed',
    id,
    ...(ref !== undefined ? { ref } : {}),
    code: isZtvError(e) ? e.code : 'internal',
    message: isZtvError(e) ? e.message : `internal error: ${(e as Error).message}`,
  },
  transfer: [],
});

export class DecodeJob {
  private view: PkiView | undefined;
  private resolver: SignerResolver | undefined;
  /** Ticket signers of the current view, validated once (see `producerOf`). */
  private producers = new Map<string, { lookup: Promise<ProducerLookup>; until: number }>();
  private readonly keys = new Map<string, Uint8Array>();
  /**
   * Release roots (format v2) whose cloud signature this worker verified with `resolver`: a ticket's
   * images share one, so it is checked once per ticket, and a path per image. Emptied with the trust
   * and with each ticket.
   */
  private traceRoots: TraceRootCache = traceRootCache();
  /**
   * The warm-up started after the first trust: the open path run once on a synthetic image and the
   * federation's producer and cloud chains validated into the resolver's memo. Resolves to the
   * synthetic image's verdict status; nothing waits for it.
   */
  warmed?: Promise<string>;

  /** `announce` posts the warm-up's notice; without it (tests calling `handle`) none is sent. */
  constructor(private readonly announce?: Announce) {}

  async handle(req: WorkerRequest): Promise<Reply> {
    const none: ArrayBuffer[] = [];
    switch (req.kind) {
      case 'trust':
        try {
          this.view = await viewOf(req.trust);
          this.resolver = memoResolver(this.view);
          this.producers = new Map();
          this.traceRoots = traceRootCache();
          this.warmed ??= this.warmUp().catch(
            (e: unknown) => `warm-up failed: ${(e as Error).message}`,
          );
          void this.prime(this.view, this.resolver);
        } catch (e) {
          // A refused trust bundle leaves the worker without trust: nothing verifies.
          this.view = undefined;
          this.resolver = undefined;
          return failure(req.id, e);
        }
        return { message: { kind: 'ok', id: req.id }, transfer: none };
      case 'ticket':
        this.traceRoots = traceRootCache();
        return this.openTicket(req);
      case 'forget':
        for (const k of this.keys.values()) k.fill(0);
        this.keys.clear();
        return { message: { kind: 'ok', id: req.id }, transfer: none };
      case 'open':
        return this.open(req.id, req.ref, new Uint8Array(req.bytes));
      case 'inspect':
        return this.inspect(req.id, req.ref, new Uint8Array(req.bytes));
    }
  }

  /**
   * Validates the chains of the federation's producers and clouds now, into the resolver's memo, and
   * the producers' as ticket signers: a ticket then costs its signature and decryption only.
   */
  private async prime(view: PkiView, resolver: SignerResolver): Promise<void> {
    for (const cert of view.organisations) {
      const ext = cert.getExtension(OID.organisationExtension);
      const role = ext ? readOrganisation(ext.value).role : undefined;
      const keyId = keyIdOf(new Uint8Array(cert.publicKey.rawData));
      if (role === 'producer' || role === 'cloud')
        await resolver.resolve(keyId, role, new Date()).catch(() => undefined);
      if (role === 'producer') await this.producerOf(view, toHex(keyId)).catch(() => undefined);
    }
  }

  /**
   * The ticket signer with key id `kid` under `view`, validated once per view (a new trust bundle
   * starts afresh) and reused only while every certificate of the view that could be in its chain is
   * within its validity; a refusal is not remembered.
   */
  private producerOf(view: PkiView, kid: string): Promise<ProducerLookup> {
    const now = Date.now();
    const hit = this.producers.get(kid);
    if (hit && view === this.view && now <= hit.until) return hit.lookup;
    const lookup = ticketProducerResolver(() => view)(kid);
    const certs = [view.root, ...view.intermediates, ...view.organisations];
    const until = Math.min(...certs.map((c) => c.notAfter.getTime()));
    if (view === this.view) {
      this.producers.set(kid, { lookup, until });
      lookup.catch(() => {
        if (this.producers.get(kid)?.lookup === lookup) this.producers.delete(kid);
      });
    }
    return lookup;
  }

  /** The ticket's key part, opened here with the device key; the image keys stay in this worker. */
  private async openTicket(req: Extract<WorkerRequest, { kind: 'ticket' }>): Promise<Reply> {
    const view = this.view;
    if (!view)
      return {
        message: {
          kind: 'failed',
          id: req.id,
          code: 'no-trust',
          message: 'the viewer has no trust anchors yet',
        },
        transfer: [],
      };
    try {
      const { claims, keys } = await openKeysPart(req.keys, {
        resolveProducer: (kid) => this.producerOf(view, kid),
        decryptionKey: req.decryptionKey,
        deviceId: req.deviceId,
      });
      for (const [ref, key] of keys) this.keys.set(ref, key);
      return {
        message: {
          kind: 'ticket-opened',
          id: req.id,
          tid: claims.tid,
          images: [...keys.keys()],
          expiresAt: claims.exp,
        },
        transfer: [],
      };
    } catch (e) {
      return failure(req.id, e);
    }
  }

  private async inspect(id: number, ref: string, bytes: Uint8Array): Promise<Reply> {
    try {
      const container = inspectProtected(bytes, ref);
      const view = this.view;
      const seal =
        view && container.seal
          ? await chainReport(
              view,
              container.seal.signerKeyId,
              'producer',
              new Date(container.seal.createdAt),
            )
          : undefined;
      const trace =
        view && container.trace
          ? await chainReport(
              view,
              container.trace.cloudKeyId,
              'cloud',
              new Date(container.trace.tracedAt),
            )
          : undefined;
      return {
        message: {
          kind: 'inspected',
          id,
          ref,
          container,
          ...(seal ? { seal } : {}),
          ...(trace ? { trace } : {}),
        },
        transfer: [],
      };
    } catch (e) {
      return failure(id, e, ref);
    }
  }

  /**
   * The JIT warm-up: the build's warm-up ticket opened as a real one is, then its synthetic image
   * opened through `open` itself (the code a study's images run, answer and transfers included), the
   * first answer posted as a real one is. Resolves to the last open's verdict status.
   */
  private async warmUp(): Promise<string> {
    const s = await openWarmUp();
    let status = '';
    try {
      for (let i = 0; i < WARM_OPENS; i++) {
        const r = await this.open(0, s.ref, s.bytes.slice(), s.resolver, s.imageKey);
        const m = r.message;
        // A broken build says why: the tests and the pool's `warmUps` read this.
        status =
          m.kind === 'opened'
            ? m.verdict.status
            : m.kind === 'failed'
              ? `failed: ${m.message}`
              : m.kind;
        if (i === 0) this.announce?.({ kind: 'warmed', status, buffers: r.transfer }, r.transfer);
      }
    } finally {
      s.imageKey.fill(0);
    }
    return status;
  }

  /**
   * Opens lent bytes; every answer hands them back, unchanged (`lend`), transferred. The resolver
   * and key are the session's unless given (the warm-up's throw-away ones).
   */
  private async open(
    id: number,
    ref: string,
    bytes: Uint8Array,
    resolver = this.resolver,
    key = this.keys.get(ref),
  ): Promise<Reply> {
    const t0 = performance.now();
    const served = bytes.buffer as ArrayBuffer;
    const fail = (code: string, message: string): Reply => ({
      message: { kind: 'failed', id, ref, code, message, served },
      transfer: [served],
    });
    if (!resolver) return fail('no-trust', 'the viewer has no trust anchors yet');
    if (!key) return fail('no-key', `no image key for ${ref} in this session`);
    try {
      // Lent: opened in place (no copy of the pixel data), as they were again once it returns.
      const opened = await openProtected(bytes, {
        resolver,
        imageKey: key,
        lend: true,
        // Roots verified with the session's resolver only (the warm-up brings its own).
        ...(resolver === this.resolver ? { traceRoots: this.traceRoots } : {}),
      });
      const r = opened.restored;
      const frames: FrameOut[] = [];
      const transfer: ArrayBuffer[] = [served];
      if (r) {
        for (let f = 0; f < r.info.frames; f++) {
          // One frame: its restored pixels are not needed again here, so convert them in place.
          const d = displayFrame(r.dataset, r.info, r.pixels, f, { inPlace: r.info.frames === 1 });
          const buf = d.pixels.buffer as ArrayBuffer;
          frames.push({ pixels: buf, kind: kindOf(d.pixels), min: d.min, max: d.max });
          transfer.push(buf);
        }
      }
      return {
        message: {
          kind: 'opened',
          id,
          ref,
          verdict: opened.verdict,
          ...(r ? { meta: displayMeta(r.dataset, r.info) } : {}),
          frames,
          header: r ? headerRows(r.dataset) : [],
          ms: performance.now() - t0,
          served,
        },
        transfer,
      };
    } catch (e) {
      if (isZtvError(e)) return fail(e.code, e.message);
      return fail('internal', `could not open ${ref}: ${(e as Error).message}`);
    }
  }
}
