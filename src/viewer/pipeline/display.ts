/**
 * From a restored original to what a renderer draws: per frame, grey samples in modality units
 * (Rescale Slope/Intercept or a Modality LUT applied, unused high bits masked, two's complement
 * honoured) or 8-bit RGB (palette, YBR and colour-by-plane resolved), plus the metadata a viewport
 * needs. DOM-free: it runs in the decode workers and in Node tests.
 */
import type { DataSet } from '../../core/dicom/dataset.ts';
import type { PixelInfo } from '../../core/dicom/pixels.ts';
import { T } from '../../core/dicom/tags.ts';

export interface DisplayMeta {
  readonly rows: number;
  readonly columns: number;
  readonly frames: number;
  readonly color: boolean;
  readonly photometric: string;
  /** MONOCHROME1: low values are bright. */
  readonly invert: boolean;
  /** [row spacing, column spacing] in mm, when known. */
  readonly pixelSpacing?: readonly [number, number];
  /**
   * Where `pixelSpacing` comes from: Pixel Spacing (in the patient), or Imager Pixel Spacing alone
   * (at the detector of a projection image: not corrected for magnification, and labelled as such).
   */
  readonly spacingSource?: 'pixel' | 'imager';
  readonly imagePosition?: readonly [number, number, number];
  readonly imageOrientation?: readonly [number, number, number, number, number, number];
  readonly sliceThickness?: number;
  readonly instanceNumber?: number;
  readonly windowCenter?: number;
  readonly windowWidth?: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
  readonly modality?: string;
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
  /** Images of one frame of reference share their patient coordinates (synchronised scrolling). */
  readonly frameOfReferenceUid?: string;
  readonly sopInstanceUid?: string;
  readonly seriesDescription?: string;
  readonly seriesNumber?: number;
  readonly patientName?: string;
  readonly patientId?: string;
  readonly studyDate?: string;
  readonly studyDescription?: string;
}

export type DisplayPixels = Int16Array | Uint16Array | Float32Array | Uint8Array;

export interface DisplayFrame {
  /** Grey: modality values. Colour: interleaved 8-bit RGB. */
  readonly pixels: DisplayPixels;
  readonly min: number;
  readonly max: number;
}

const num = (ds: DataSet, tag: number): number | undefined => ds.number(tag);

function numbers(ds: DataSet, tag: number): number[] | undefined {
  const t = ds.text(tag);
  if (t === undefined) return undefined;
  const out = t.split('\\').map((x) => Number(x.trim()));
  return out.length > 0 && out.every(Number.isFinite) ? out : undefined;
}

export function displayMeta(ds: DataSet, info: PixelInfo): DisplayMeta {
  const pixel = numbers(ds, T.PixelSpacing);
  const spacing = pixel ?? numbers(ds, T.ImagerPixelSpacing);
  const pos = numbers(ds, T.ImagePositionPatient);
  const ori = numbers(ds, T.ImageOrientationPatient);
  const text = (tag: number) => ds.text(tag) || undefined;
  const photometric = info.photometric;
  return {
    rows: info.rows,
    columns: info.columns,
    frames: info.frames,
    color: info.samplesPerPixel === 3 || photometric === 'PALETTE COLOR',
    photometric,
    invert: photometric === 'MONOCHROME1',
    ...(spacing?.length === 2
      ? {
          pixelSpacing: [spacing[0]!, spacing[1]!] as const,
          spacingSource: pixel ? ('pixel' as const) : ('imager' as const),
        }
      : {}),
    ...(pos?.length === 3 ? { imagePosition: [pos[0]!, pos[1]!, pos[2]!] as const } : {}),
    ...(ori?.length === 6
      ? { imageOrientation: [ori[0]!, ori[1]!, ori[2]!, ori[3]!, ori[4]!, ori[5]!] as const }
      : {}),
    ...opt('sliceThickness', num(ds, T.SliceThickness)),
    ...opt('instanceNumber', num(ds, T.InstanceNumber)),
    ...opt('windowCenter', numbers(ds, T.WindowCenter)?.[0]),
    ...opt('windowWidth', numbers(ds, T.WindowWidth)?.[0]),
    rescaleSlope: num(ds, T.RescaleSlope) ?? 1,
    rescaleIntercept: num(ds, T.RescaleIntercept) ?? 0,
    ...opt('modality', text(T.Modality)),
    ...opt('studyInstanceUid', text(T.StudyInstanceUID)),
    ...opt('seriesInstanceUid', text(T.SeriesInstanceUID)),
    ...opt('frameOfReferenceUid', text(T.FrameOfReferenceUID)),
    ...opt('sopInstanceUid', text(T.SOPInstanceUID)),
    ...opt('seriesDescription', text(T.SeriesDescription)),
    ...opt('seriesNumber', num(ds, T.SeriesNumber)),
    ...opt('patientName', text(T.PatientName)),
    ...opt('patientId', text(T.PatientID)),
    ...opt('studyDate', text(T.StudyDate)),
    ...opt('studyDescription', text(T.StudyDescription)),
  };
}

function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

/** Stored values of one frame as numbers: high bits masked, sign honoured. */
function storedValues(info: PixelInfo, data: Uint8Array, frame: number): Float64Array {
  const n = info.rows * info.columns * info.samplesPerPixel;
  const out = new Float64Array(n);
  if (info.bitsAllocated === 1) {
    const start = frame * info.rows * info.columns;
    for (let i = 0; i < n; i++) out[i] = (data[(start + i) >> 3]! >> ((start + i) & 7)) & 1;
    return out;
  }
  const bytes = info.bitsAllocated / 8;
  const dv = new DataView(data.buffer, data.byteOffset + frame * n * bytes, n * bytes);
  const float = info.pixelTag === T.FloatPixelData;
  const bs = info.bitsStored;
  const span = 2 ** bs;
  for (let i = 0; i < n; i++) {
    if (float) {
      out[i] = dv.getFloat32(4 * i, true);
      continue;
    }
    const w =
      bytes === 1
        ? dv.getUint8(i)
        : bytes === 2
          ? dv.getUint16(2 * i, true)
          : dv.getUint32(4 * i, true);
    const low = bs >= 32 ? w : w % span;
    out[i] = info.pixelRepresentation === 1 && low >= span / 2 ? low - span : low;
  }
  return out;
}

/**
 * The Modality LUT Sequence (0028,3000) as a function, when the data set has one. The descriptor's
 * first mapped value is signed when the pixels are (PS3.3 C.11.1.1.1), whatever VR it was written with.
 */
function modalityLut(ds: DataSet, signed: boolean): ((v: number) => number) | undefined {
  const item = ds.get(T.ModalityLUTSequence)?.items?.[0];
  const desc = item?.get(T.LUTDescriptor)?.value;
  const data = item?.get(T.LUTData)?.value;
  if (!desc || !data || desc.length < 6) return undefined;
  const dv = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  const count = dv.getUint16(0, true) || 65536;
  const first = signed ? dv.getInt16(2, true) : dv.getUint16(2, true);
  const entries = new Uint16Array(count);
  const lut = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < count && 2 * i + 1 < data.length; i++)
    entries[i] = lut.getUint16(2 * i, true);
  return (v) => entries[Math.max(0, Math.min(count - 1, v - first))]!;
}

/** 8-bit RGB of a colour frame, interleaved, whatever the stored colour model. */
function rgbFrame(ds: DataSet, info: PixelInfo, data: Uint8Array, frame: number): Uint8Array {
  const px = info.rows * info.columns;
  const out = new Uint8Array(px * 3);
  if (info.photometric === 'PALETTE COLOR') {
    const values = storedValues(info, data, frame);
    const lut = (descTag: number, dataTag: number) => {
      const desc = ds.get(descTag)?.value;
      const d = ds.get(dataTag)?.value;
      if (!desc || !d) return () => 0;
      const dv = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
      const count = dv.getUint16(0, true) || 65536;
      const first = dv.getUint16(2, true);
      const bits = dv.getUint16(4, true);
      const table = new DataView(d.buffer, d.byteOffset, d.byteLength);
      const wide = d.length >= count * 2;
      return (v: number) => {
        const i = Math.max(0, Math.min(count - 1, v - first));
        const e = wide ? table.getUint16(2 * i, true) : table.getUint8(i);
        return bits > 8 ? e >> 8 : e;
      };
    };
    const r = lut(T.RedPaletteColorLookupTableDescriptor, T.RedPaletteColorLookupTableData);
    const g = lut(T.GreenPaletteColorLookupTableDescriptor, T.GreenPaletteColorLookupTableData);
    const b = lut(T.BluePaletteColorLookupTableDescriptor, T.BluePaletteColorLookupTableData);
    for (let i = 0; i < px; i++) {
      const v = values[i]!;
      out[3 * i] = r(v);
      out[3 * i + 1] = g(v);
      out[3 * i + 2] = b(v);
    }
    return out;
  }
  const ybr422 = /^YBR_(FULL|PARTIAL)_422$/.test(info.photometric);
  const frameBytes = ybr422 ? px * 2 : px * 3 * (info.bitsAllocated / 8);
  const f = data.subarray(frame * frameBytes, (frame + 1) * frameBytes);
  const wide = info.bitsAllocated === 16;
  const sample = (i: number): number =>
    wide ? (f[2 * i]! | (f[2 * i + 1]! << 8)) >> (info.bitsStored - 8) : f[i]!;
  const get = (p: number, c: number): number =>
    info.planarConfiguration === 1 ? sample(c * px + p) : sample(3 * p + c);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  const ybr = info.photometric.startsWith('YBR');
  for (let p = 0; p < px; p++) {
    let y: number, cb: number, cr: number;
    if (ybr422) {
      const pair = p >> 1;
      y = f[4 * pair + (p & 1)]!;
      cb = f[4 * pair + 2]!;
      cr = f[4 * pair + 3]!;
    } else if (ybr) {
      y = get(p, 0);
      cb = get(p, 1);
      cr = get(p, 2);
    } else {
      out[3 * p] = get(p, 0);
      out[3 * p + 1] = get(p, 1);
      out[3 * p + 2] = get(p, 2);
      continue;
    }
    out[3 * p] = clamp(y + 1.402 * (cr - 128));
    out[3 * p + 1] = clamp(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128));
    out[3 * p + 2] = clamp(y + 1.772 * (cb - 128));
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The smallest array kind that holds [min, max] exactly, as the general path chooses it. */
const kindFor = (min: number, max: number, integral: boolean) =>
  integral && min >= -32768 && max <= 32767
    ? Int16Array
    : integral && min >= 0 && max <= 65535
      ? Uint16Array
      : Float32Array;

/**
 * The common case in two tight passes over typed arrays (measured: docs/viewer.md, "What was done
 * for those figures"): 8- or 16-bit integer grey samples, no Modality LUT, integer slope and
 * intercept. Same values and same array kind as the general path; undefined when it does not apply.
 */
function fastGrey(
  info: PixelInfo,
  data: Uint8Array,
  frame: number,
  slope: number,
  intercept: number,
  inPlace: boolean,
): DisplayFrame | undefined {
  const bytes = info.bitsAllocated / 8;
  if (
    info.samplesPerPixel !== 1 ||
    info.pixelTag !== T.PixelData ||
    (bytes !== 1 && bytes !== 2) ||
    !Number.isInteger(slope) ||
    !Number.isInteger(intercept) ||
    (bytes === 2 && !LITTLE_ENDIAN)
  )
    return undefined;
  const n = info.rows * info.columns;
  const start = frame * n * bytes;
  if (start + n * bytes > data.length) return undefined;
  const off = data.byteOffset + start;
  const src =
    bytes === 1
      ? data.subarray(start, start + n)
      : off % 2 === 0
        ? new Uint16Array(data.buffer, off, n)
        : new Uint16Array(data.slice(start, start + 2 * n).buffer);
  const bs = Math.min(info.bitsStored, 8 * bytes);
  const mask = bs >= 16 ? 0xffff : (1 << bs) - 1;
  const shift = 32 - bs;
  const signed = info.pixelRepresentation === 1;
  /**
   * The output array: a new one, or — when the caller gives the pixel data up and it is exactly one
   * frame of 16-bit words filling its own buffer — 16-bit lanes over that very buffer, each value
   * converted where it is read (no half-megabyte allocation, no fresh pages to fault in).
   */
  const reuse =
    inPlace &&
    bytes === 2 &&
    src.buffer === data.buffer &&
    data.byteOffset === 0 &&
    data.byteLength === 2 * n &&
    data.buffer.byteLength === 2 * n;
  const output = (Kind: typeof Int16Array | typeof Uint16Array | typeof Float32Array) =>
    reuse && Kind !== Float32Array ? new Kind(data.buffer as ArrayBuffer, 0, n) : new Kind(n);
  // When every value the stored bits can hold maps into Int16 (CT: 12 bits, intercept −1024), the
  // array kind is Int16 whatever the actual range: one pass, the range found on the way.
  const [pa, pb] = signed
    ? [-(2 ** (bs - 1)) * slope + intercept, (2 ** (bs - 1) - 1) * slope + intercept]
    : [intercept, mask * slope + intercept];
  if (Math.min(pa, pb) >= -32768 && Math.max(pa, pb) <= 32767) {
    const out = output(Int16Array);
    let lo = Infinity;
    let hi = -Infinity;
    const sh = signed ? shift : 0;
    for (let i = 0; i < n; i++) {
      const v = ((src[i]! & mask) << sh) >> sh;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      out[i] = v * slope + intercept;
    }
    const a = lo * slope + intercept;
    const b = hi * slope + intercept;
    return { pixels: out, min: Math.min(a, b), max: Math.max(a, b) };
  }
  // Pass 1: the range of the stored values (sign-extended, high bits masked).
  let lo = Infinity;
  let hi = -Infinity;
  if (signed)
    for (let i = 0; i < n; i++) {
      const v = ((src[i]! & mask) << shift) >> shift;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  else
    for (let i = 0; i < n; i++) {
      const v = src[i]! & mask;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  const a = lo * slope + intercept;
  const b = hi * slope + intercept;
  const min = Math.min(a, b);
  const max = Math.max(a, b);
  // Pass 2: modality values straight into the smallest array that holds them.
  const out = output(kindFor(min, max, true));
  if (signed)
    for (let i = 0; i < n; i++) out[i] = (((src[i]! & mask) << shift) >> shift) * slope + intercept;
  else for (let i = 0; i < n; i++) out[i] = (src[i]! & mask) * slope + intercept;
  return { pixels: out, min, max };
}

export interface DisplayOptions {
  /**
   * The caller gives `data` up (a decode worker, once the image is verified): a single 16-bit grey
   * frame may then be converted in place and returned over `data`'s buffer.
   */
  readonly inPlace?: boolean;
}

/** One frame ready to draw. */
export function displayFrame(
  ds: DataSet,
  info: PixelInfo,
  data: Uint8Array,
  frame: number,
  opts: DisplayOptions = {},
): DisplayFrame {
  const meta = displayMeta(ds, info);
  if (meta.color) {
    const pixels = rgbFrame(ds, info, data, frame);
    return { pixels, min: 0, max: 255 };
  }
  const lut = modalityLut(ds, info.pixelRepresentation === 1);
  const slope = meta.rescaleSlope;
  const intercept = meta.rescaleIntercept;
  if (!lut) {
    const fast = fastGrey(info, data, frame, slope, intercept, opts.inPlace === true);
    if (fast) return fast;
  }
  return generalGrey(info, data, frame, slope, intercept, lut);
}

/**
 * Grey modality values the general way, for any depth, LUT and rescale (exported for the tests
 * that hold the fast path to it).
 */
export function greyFrameGeneral(
  ds: DataSet,
  info: PixelInfo,
  data: Uint8Array,
  frame: number,
): DisplayFrame {
  const meta = displayMeta(ds, info);
  const lut = modalityLut(ds, info.pixelRepresentation === 1);
  return generalGrey(info, data, frame, meta.rescaleSlope, meta.rescaleIntercept, lut);
}

function generalGrey(
  info: PixelInfo,
  data: Uint8Array,
  frame: number,
  slope: number,
  intercept: number,
  lut: ((v: number) => number) | undefined,
): DisplayFrame {
  const stored = storedValues(info, data, frame);
  let min = Infinity;
  let max = -Infinity;
  let integral = true;
  const values = new Float64Array(stored.length);
  for (let i = 0; i < stored.length; i++) {
    const v = lut ? lut(stored[i]!) : stored[i]! * slope + intercept;
    values[i] = v;
    if (v < min) min = v;
    if (v > max) max = v;
    if (integral && !Number.isInteger(v)) integral = false;
  }
  return { pixels: kindFor(min, max, integral).from(values), min, max };
}
