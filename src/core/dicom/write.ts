/**
 * Writes DataSets as Explicit VR Little Endian: Part 10 files (preamble, DICM, File Meta) or bare
 * data sets (for the encrypted attributes). Every length is defined; values are padded to even
 * length the way PS3.5 says (space for text, NUL for UI and binary).
 */
import { ZtvError } from '../errors.ts';
import { DataSet, LONG_VRS, TEXT_VRS, tagString, type DicomElement } from './dataset.ts';
import { T, TS } from './tags.ts';

/** Our Implementation Class UID (a UUID-derived 2.25 root, PS3.5 B.2). */
export const IMPLEMENTATION_CLASS_UID = '2.25.63280751961807641394508081987658453216';
export const IMPLEMENTATION_VERSION_NAME = 'ZTV_1';

const ITEM = 0xfffee000;
const SEQUENCE_DELIMITER = 0xfffee0dd;

function headerLength(vr: string): number {
  return LONG_VRS.has(vr) ? 12 : 8;
}

/** Bytes of encapsulated pixel data: offset table item, fragment items, sequence delimiter. */
function encapsulatedLength(el: DicomElement): number {
  let n = 8 + 4 * (el.offsetTable?.length ?? 0) + 8;
  for (const f of el.fragments ?? []) n += 8 + f.length + (f.length & 1);
  return n;
}

/** Bytes of the value as written (encapsulated data is written with undefined length). */
function valueLength(el: DicomElement): number {
  if (el.items) return el.items.reduce((n, it) => n + 8 + dataSetLength(it), 0);
  if (el.fragments) return encapsulatedLength(el);
  const n = el.value?.length ?? 0;
  return n + (n & 1);
}

/** The VR actually written: short-length VRs that outgrow 16 bits become UN. */
function writtenVr(el: DicomElement): string {
  // Items and delimiters are the writer's business: an element of group FFFE in a data set would be
  // written as data and break every reader's framing (DCMTK: "larger than remaining bytes").
  if (el.tag >>> 16 === 0xfffe)
    throw new ZtvError('bad-input', `${tagString(el.tag)} is a delimiter, not a data element`);
  if (el.items) return 'SQ';
  if (el.fragments) return 'OB';
  if (!LONG_VRS.has(el.vr) && valueLength(el) > 0xffff) return 'UN';
  return el.vr;
}

function elementLength(el: DicomElement): number {
  return headerLength(writtenVr(el)) + valueLength(el);
}

export function dataSetLength(ds: DataSet): number {
  let n = 0;
  for (const el of ds.elements()) n += elementLength(el);
  return n;
}

class Writer {
  readonly bytes: Uint8Array;
  protected readonly view: DataView;
  pos = 0;
  constructor(n: number | Uint8Array) {
    this.bytes = typeof n === 'number' ? new Uint8Array(n) : n;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }
  u8(v: number): void {
    this.bytes[this.pos++] = v;
  }
  u16(v: number): void {
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }
  u32(v: number): void {
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }
  tag(t: number): void {
    this.u16(t >>> 16);
    this.u16(t & 0xffff);
  }
  raw(b: Uint8Array): void {
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }
  element(el: DicomElement): void {
    const vr = writtenVr(el);
    const len = valueLength(el);
    this.tag(el.tag);
    this.u8(vr.charCodeAt(0));
    this.u8(vr.charCodeAt(1));
    if (LONG_VRS.has(vr)) {
      this.u16(0);
      this.u32(el.fragments ? 0xffffffff : len);
    } else {
      this.u16(len);
    }
    if (el.fragments) {
      this.tag(ITEM);
      this.u32(4 * (el.offsetTable?.length ?? 0));
      for (const o of el.offsetTable ?? []) this.u32(o);
      for (const f of el.fragments) {
        this.tag(ITEM);
        this.u32(f.length + (f.length & 1));
        this.raw(f);
        if (f.length & 1) this.u8(0);
      }
      this.tag(SEQUENCE_DELIMITER);
      this.u32(0);
      return;
    }
    if (el.items) {
      for (const item of el.items) {
        this.tag(ITEM);
        this.u32(dataSetLength(item));
        this.dataSet(item);
      }
      return;
    }
    const v = el.value ?? new Uint8Array(0);
    this.raw(v);
    if (v.length & 1) this.u8(TEXT_VRS.has(el.vr) && el.vr !== 'UI' ? 0x20 : 0x00);
  }
  dataSet(ds: DataSet): void {
    for (const el of ds.elements()) this.element(el);
  }
}

/** A bare data set, Explicit VR Little Endian. */
export function writeDataSet(ds: DataSet): Uint8Array {
  const w = new Writer(dataSetLength(ds));
  w.dataSet(ds);
  return w.bytes;
}

export interface Part10Meta {
  sopClassUid: string;
  sopInstanceUid: string;
}

/**
 * The File Meta group of a file whose data set is in `transferSyntaxUid` (Explicit VR Little Endian,
 * what this writer writes, unless a caller wraps a data set encoded elsewhere: a DIMSE receiver).
 */
export function fileMeta(m: Part10Meta, transferSyntaxUid: string = TS.ExplicitLittle): DataSet {
  const meta = new DataSet();
  meta.set({ tag: T.FileMetaInformationVersion, vr: 'OB', value: Uint8Array.of(0, 1) });
  meta.setText(T.MediaStorageSOPClassUID, 'UI', m.sopClassUid);
  meta.setText(T.MediaStorageSOPInstanceUID, 'UI', m.sopInstanceUid);
  meta.setText(T.TransferSyntaxUID, 'UI', transferSyntaxUid);
  meta.setText(T.ImplementationClassUID, 'UI', IMPLEMENTATION_CLASS_UID);
  meta.setText(T.ImplementationVersionName, 'SH', IMPLEMENTATION_VERSION_NAME);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, dataSetLength(meta), true);
  meta.set({ tag: T.FileMetaInformationGroupLength, vr: 'UL', value: len });
  return meta;
}

export interface WrittenPart10 {
  readonly bytes: Uint8Array;
  /** Offset of the first data set element (just after the File Meta). */
  readonly dataSetOffset: number;
}

/** A Part 10 file: 128-byte preamble, "DICM", File Meta, then the data set. */
export function writePart10(m: Part10Meta, ds: DataSet): WrittenPart10 {
  const w = new Writer(part10Length(m, ds));
  const dataSetOffset = part10(w, m, ds);
  return { bytes: w.bytes, dataSetOffset };
}

function part10Length(m: Part10Meta, ds: DataSet): number {
  for (const el of ds.elements()) {
    if (el.tag >>> 16 === 0x0002)
      throw new ZtvError('bad-input', 'group 0002 belongs in the File Meta, not the data set');
  }
  return 132 + dataSetLength(fileMeta(m)) + dataSetLength(ds);
}

function part10(w: Writer, m: Part10Meta, ds: DataSet): number {
  for (let i = 0; i < 128; i++) w.u8(0);
  w.raw(Uint8Array.of(0x44, 0x49, 0x43, 0x4d));
  w.dataSet(fileMeta(m));
  const dataSetOffset = w.pos;
  w.dataSet(ds);
  return dataSetOffset;
}

/**
 * A Writer that writes nothing: it compares what it would write with `target` and remembers the first
 * offset where they differ. Values that are views of `target` at the very place they would be written
 * (pixel data parsed without a copy) are equal by construction and not read again.
 */
class Comparer extends Writer {
  firstDifference = -1;
  private differ(at: number): void {
    if (this.firstDifference < 0) this.firstDifference = at;
  }
  override u8(v: number): void {
    if (this.pos >= this.bytes.length || this.bytes[this.pos] !== (v & 0xff)) this.differ(this.pos);
    this.pos++;
  }
  override u16(v: number): void {
    this.u8(v & 0xff);
    this.u8(v >>> 8);
  }
  override u32(v: number): void {
    this.u16(v & 0xffff);
    this.u16(v >>> 16);
  }
  override raw(b: Uint8Array): void {
    const t = this.bytes;
    const sameView =
      b.buffer === t.buffer &&
      b.byteOffset === t.byteOffset + this.pos &&
      this.pos + b.length <= t.length;
    if (!sameView)
      for (let i = 0; i < b.length; i++)
        if (this.pos + i >= t.length || t[this.pos + i] !== b[i]) {
          this.differ(this.pos + i);
          break;
        }
    this.pos += b.length;
  }
}

/**
 * Where `bytes` differ from the Part 10 file `writePart10(m, ds)` would write (zero preamble, our
 * File Meta, the canonical encoding of `ds`), or -1 when they are that very file, byte for byte.
 */
export function part10Difference(bytes: Uint8Array, m: Part10Meta, ds: DataSet): number {
  const length = part10Length(m, ds);
  const c = new Comparer(bytes);
  part10(c, m, ds);
  if (c.firstDifference >= 0) return c.firstDifference;
  return bytes.length === length ? -1 : Math.min(bytes.length, length);
}
