/**
 * An in-memory DICOM data set: elements keyed by tag, every value held as little-endian bytes
 * exactly as it will be written, sequences as nested data sets, encapsulated pixel data as
 * fragments. Values are never re-encoded behind the caller's back, so what a file said is what
 * a restored file says.
 */
import { fromUtf8, utf8 } from '../bytes.ts';
import { assertInput } from '../errors.ts';

export interface DicomElement {
  readonly tag: number;
  readonly vr: string;
  /** Value bytes (little endian) for everything but sequences and encapsulated pixel data. */
  readonly value?: Uint8Array;
  /** Items of a sequence (VR SQ). */
  readonly items?: DataSet[];
  /** Encapsulated pixel data: the fragments after the Basic Offset Table. */
  readonly fragments?: Uint8Array[];
  /** Encapsulated pixel data: the Basic Offset Table entries (may be empty). */
  readonly offsetTable?: number[];
}

/** VRs whose values are text, padded with a space (UI pads with NUL). */
export const TEXT_VRS = new Set([
  'AE',
  'AS',
  'CS',
  'DA',
  'DS',
  'DT',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'ST',
  'TM',
  'UC',
  'UI',
  'UR',
  'UT',
]);
/** VRs written with a 4-byte length in explicit VR (PS3.5 7.1.2). */
export const LONG_VRS = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);
/** Byte width of each numeric VR, for endianness swaps. */
export const VR_WORD = new Map<string, number>([
  ['US', 2],
  ['SS', 2],
  ['OW', 2],
  ['AT', 2],
  ['UL', 4],
  ['SL', 4],
  ['FL', 4],
  ['OF', 4],
  ['OL', 4],
  ['FD', 8],
  ['OD', 8],
  ['SV', 8],
  ['UV', 8],
  ['OV', 8],
]);

export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0;

export const tagString = (t: number): string => {
  const h = (t >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
};

export class DataSet {
  private readonly map = new Map<number, DicomElement>();

  get size(): number {
    return this.map.size;
  }
  has(t: number): boolean {
    return this.map.has(t);
  }
  get(t: number): DicomElement | undefined {
    return this.map.get(t);
  }
  set(el: DicomElement): void {
    this.map.set(el.tag >>> 0, el);
  }
  delete(t: number): boolean {
    return this.map.delete(t);
  }
  /** Elements in ascending tag order (the order of a written file). */
  elements(): DicomElement[] {
    return [...this.map.values()].sort((a, b) => a.tag - b.tag);
  }
  clone(): DataSet {
    const out = new DataSet();
    for (const el of this.map.values()) {
      out.set({ ...el, ...(el.items ? { items: el.items.map((i) => i.clone()) } : {}) });
    }
    return out;
  }

  /** The value as text, with trailing padding removed; undefined when absent or not text. */
  text(t: number): string | undefined {
    const el = this.map.get(t);
    if (!el?.value) return undefined;
    return decodeText(el.value);
  }
  /** The first numeric value of a US/SS/UL/SL element, or of an IS/DS string. */
  number(t: number): number | undefined {
    const el = this.map.get(t);
    if (!el?.value || el.value.length === 0) return undefined;
    const v = el.value;
    const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
    switch (el.vr) {
      case 'US':
        return v.length >= 2 ? dv.getUint16(0, true) : undefined;
      case 'SS':
        return v.length >= 2 ? dv.getInt16(0, true) : undefined;
      case 'UL':
        return v.length >= 4 ? dv.getUint32(0, true) : undefined;
      case 'SL':
        return v.length >= 4 ? dv.getInt32(0, true) : undefined;
      case 'IS':
      case 'DS': {
        const s = decodeText(v).split('\\')[0]?.trim() ?? '';
        const n = Number(s);
        return s !== '' && Number.isFinite(n) ? n : undefined;
      }
      default:
        return undefined;
    }
  }
  setText(t: number, vr: string, value: string): void {
    this.set({ tag: t, vr, value: encodeText(vr, value) });
  }
  setUint16(t: number, value: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, value, true);
    this.set({ tag: t, vr: 'US', value: b });
  }
}

const latin1 = new TextDecoder('latin1');

/** Text without trailing spaces/NULs (and without leading spaces, which DICOM treats as padding too). */
export function decodeText(b: Uint8Array): string {
  return latin1
    .decode(b)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
}

/** Text encoded for a VR: even length, padded with a space (or NUL for UI). */
export function encodeText(vr: string, s: string): Uint8Array {
  assertInput(TEXT_VRS.has(vr), `VR ${vr} is not a text VR`);
  const raw = utf8(s);
  if (raw.length % 2 === 0) return raw;
  const out = new Uint8Array(raw.length + 1);
  out.set(raw);
  out[raw.length] = vr === 'UI' ? 0 : 0x20;
  return out;
}

export { fromUtf8 };
