/**
 * What a decode worker does, as a plain message handler (the worker file only wires it to
 * `self.onmessage`; tests call it directly): keep the trust anchors and the image keys of this session
 * in memory, and open protected images into display-ready frames.
 */
import { verifyKeyFromPem } from '../../core/crypto/keys.ts';
import type { DataSet } from '../../core/dicom/dataset.ts';
import { tagName } from '../../core/dicom/dictionary.ts';
import { TEXT_VRS } from '../../core/dicom/dataset.ts';
import { isZtvError } from '../../core/errors.ts';
import { openProtected, staticResolver, type SignerResolver } from '../../core/protect/index.ts';
import { displayFrame, displayMeta, type DisplayPixels } from './display.ts';
import type { FrameOut, PixelKind, TagRow, WorkerRequest, WorkerResponse } from './protocol.ts';

export interface Reply {
  readonly message: WorkerResponse;
  readonly transfer: ArrayBuffer[];
}

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

/** The restored header as rows for the tag browser (values shortened, binary shown by size). */
export function headerRows(ds: DataSet, depth = 0): TagRow[] {
  const rows: TagRow[] = [];
  for (const el of ds.elements()) {
    if (el.tag === 0x7fe00010 || el.tag === 0x7fe00008) {
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
      if (depth < 4) for (const item of el.items) rows.push(...headerRows(item, depth + 1));
      continue;
    }
    const v = el.value ?? new Uint8Array(0);
    const value = TEXT_VRS.has(el.vr)
      ? new TextDecoder('latin1')
          .decode(v)
          .replace(/[\0 ]+$/, '')
          .slice(0, 200)
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

export class DecodeJob {
  private resolver: SignerResolver | undefined;
  private readonly keys = new Map<string, Uint8Array>();

  async handle(req: WorkerRequest): Promise<Reply> {
    const none: ArrayBuffer[] = [];
    switch (req.kind) {
      case 'trust': {
        const load = (list: readonly { pem: string; subject: string }[]) =>
          Promise.all(
            list.map(async (e) => ({ key: await verifyKeyFromPem(e.pem), subject: e.subject })),
          );
        this.resolver = staticResolver({
          producer: await load(req.trust.producers),
          cloud: await load(req.trust.clouds),
        });
        return { message: { kind: 'ok', id: req.id }, transfer: none };
      }
      case 'keys':
        for (const k of req.keys) this.keys.set(k.ref, k.key.slice());
        return { message: { kind: 'ok', id: req.id }, transfer: none };
      case 'forget':
        for (const k of this.keys.values()) k.fill(0);
        this.keys.clear();
        return { message: { kind: 'ok', id: req.id }, transfer: none };
      case 'open':
        return this.open(req.id, req.ref, new Uint8Array(req.bytes));
    }
  }

  private async open(id: number, ref: string, bytes: Uint8Array): Promise<Reply> {
    const t0 = performance.now();
    const fail = (code: string, message: string): Reply => ({
      message: { kind: 'failed', id, ref, code, message },
      transfer: [],
    });
    if (!this.resolver) return fail('no-trust', 'the viewer has no trust anchors yet');
    const key = this.keys.get(ref);
    if (!key) return fail('no-key', `no image key for ${ref} in this session`);
    try {
      const opened = await openProtected(bytes, { resolver: this.resolver, imageKey: key });
      const r = opened.restored;
      const frames: FrameOut[] = [];
      const transfer: ArrayBuffer[] = [];
      if (r) {
        for (let f = 0; f < r.info.frames; f++) {
          const d = displayFrame(r.dataset, r.info, r.pixels, f);
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
        },
        transfer,
      };
    } catch (e) {
      if (isZtvError(e)) return fail(e.code, e.message);
      return fail('internal', `could not open ${ref}: ${(e as Error).message}`);
    }
  }
}
