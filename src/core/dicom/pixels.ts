/**
 * The image pixel module of a data set, checked, and its pixel data as native little-endian bytes
 * (decoded first when the source is compressed).
 */
import { ZtvError } from '../errors.ts';
import { tagString, type DataSet } from './dataset.ts';
import { COMPRESSED_SYNTAXES, LOSSY_SYNTAXES, decodeFrame, splitFrames } from './codecs/index.ts';
import type { ParsedDicom } from './parse.ts';
import { T } from './tags.ts';

export interface PixelInfo {
  readonly rows: number;
  readonly columns: number;
  readonly frames: number;
  readonly samplesPerPixel: number;
  /** 1, 8, 16, 32 or 64 (64 only for Double Float Pixel Data). */
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: 0 | 1;
  readonly planarConfiguration: 0 | 1;
  readonly photometric: string;
  /** (7FE0,0010) Pixel Data, (7FE0,0008) Float or (7FE0,0009) Double Float Pixel Data. */
  readonly pixelTag: number;
}

export function pixelDataElementTag(ds: DataSet): number | undefined {
  for (const t of [T.PixelData, T.FloatPixelData, T.DoubleFloatPixelData]) if (ds.has(t)) return t;
  return undefined;
}

/** Reads and checks the pixel module; every missing or impossible value is named. */
export function pixelInfoOf(ds: DataSet): PixelInfo {
  const pixelTag = pixelDataElementTag(ds);
  if (pixelTag === undefined)
    throw new ZtvError('unsupported', 'the data set has no Pixel Data: it is not an image');
  const need = (t: number, name: string): number => {
    const v = ds.number(t);
    if (v === undefined)
      throw new ZtvError('unsupported', `the image has no ${name} (${tagStr(t)})`);
    return v;
  };
  const rows = need(T.Rows, 'Rows');
  const columns = need(T.Columns, 'Columns');
  const floatBits =
    pixelTag === T.FloatPixelData ? 32 : pixelTag === T.DoubleFloatPixelData ? 64 : undefined;
  const bitsAllocated = floatBits ?? need(T.BitsAllocated, 'Bits Allocated');
  const samplesPerPixel = ds.number(T.SamplesPerPixel) ?? 1;
  const frames = ds.number(T.NumberOfFrames) ?? 1;
  const bitsStored = floatBits ?? ds.number(T.BitsStored) ?? bitsAllocated;
  const pr = floatBits ? 0 : (ds.number(T.PixelRepresentation) ?? 0);
  const pc = ds.number(T.PlanarConfiguration) ?? 0;
  const photometric =
    ds.text(T.PhotometricInterpretation) ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2');
  if (!(rows > 0 && columns > 0 && Number.isInteger(rows) && Number.isInteger(columns)))
    throw new ZtvError('unsupported', `the image has impossible dimensions ${columns}x${rows}`);
  if (!(Number.isInteger(frames) && frames >= 1))
    throw new ZtvError('unsupported', `the image has an impossible Number of Frames (${frames})`);
  if (![1, 3].includes(samplesPerPixel))
    throw new ZtvError(
      'unsupported',
      `Samples per Pixel ${samplesPerPixel} is not supported (1 or 3)`,
    );
  if (![1, 8, 16, 32, 64].includes(bitsAllocated))
    throw new ZtvError(
      'unsupported',
      `Bits Allocated ${bitsAllocated} is not supported (1, 8, 16 or 32; packed ${bitsAllocated}-bit samples are not)`,
    );
  if (bitsAllocated === 1 && samplesPerPixel !== 1)
    throw new ZtvError('unsupported', '1-bit colour images are not supported');
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated))
    throw new ZtvError(
      'unsupported',
      `Bits Stored ${bitsStored} does not fit in Bits Allocated ${bitsAllocated}`,
    );
  if (samplesPerPixel === 3 && /_422$/.test(photometric) && columns % 2 !== 0)
    throw new ZtvError(
      'unsupported',
      `${photometric} needs an even number of columns, not ${columns}`,
    );
  if (pr !== 0 && pr !== 1)
    throw new ZtvError('unsupported', `Pixel Representation ${pr} is neither 0 nor 1`);
  return {
    rows,
    columns,
    frames,
    samplesPerPixel,
    bitsAllocated,
    bitsStored,
    pixelRepresentation: pr,
    planarConfiguration: pc === 1 && samplesPerPixel > 1 ? 1 : 0,
    photometric,
    pixelTag,
  };
}

const tagStr = (t: number): string => {
  const h = t.toString(16).toUpperCase().padStart(8, '0');
  return `${h.slice(0, 4)},${h.slice(4)}`;
};

/**
 * YBR_FULL_422 / YBR_PARTIAL_422 stored natively: each pair of pixels holds two luminance and one
 * pair of chroma samples (Y1 Y2 Cb Cr), so a frame holds two samples per pixel, not three.
 */
export const isChromaSubsampled = (info: PixelInfo): boolean =>
  info.samplesPerPixel === 3 && /_422$/.test(info.photometric);

export function frameByteLength(info: PixelInfo): number {
  const samples = info.rows * info.columns * (isChromaSubsampled(info) ? 2 : info.samplesPerPixel);
  return info.bitsAllocated === 1 ? Math.ceil(samples / 8) : samples * (info.bitsAllocated / 8);
}

/** Bytes of all frames, native (for 1-bit data the frames are packed back to back, bit by bit). */
export function pixelByteLength(info: PixelInfo): number {
  if (info.bitsAllocated === 1) return Math.ceil((info.rows * info.columns * info.frames) / 8);
  return frameByteLength(info) * info.frames;
}

export interface NativePixels {
  readonly info: PixelInfo;
  /** Exactly pixelByteLength(info) bytes, little endian. */
  readonly data: Uint8Array;
  /** The compressed transfer syntax the pixels were decoded from, if any. */
  readonly decodedFrom?: string;
  readonly lossy: boolean;
  /** What the decoder tolerated, in words (empty for a clean decode). */
  readonly warnings: string[];
}

/** Native pixel data of a parsed file, decoding compressed frames. */
export async function readPixelData(
  parsed: Pick<ParsedDicom, 'dataset' | 'transferSyntax'>,
): Promise<NativePixels> {
  let info = pixelInfoOf(parsed.dataset);
  const el = parsed.dataset.get(info.pixelTag)!;
  const want = pixelByteLength(info);
  if (!el.fragments) {
    const v = el.value ?? new Uint8Array(0);
    if (COMPRESSED_SYNTAXES.has(parsed.transferSyntax) && v.length !== want)
      throw new ZtvError(
        'not-dicom',
        `transfer syntax ${parsed.transferSyntax} needs encapsulated Pixel Data`,
      );
    if (v.length < want)
      throw new ZtvError(
        'truncated',
        `Pixel Data is truncated: ${info.columns}x${info.rows}x${info.frames} at ${info.bitsAllocated} bits needs ${want} bytes, the file holds ${v.length}`,
      );
    return { info, data: v.length === want ? v : v.slice(0, want), lossy: false, warnings: [] };
  }
  const ts = parsed.transferSyntax;
  if (!COMPRESSED_SYNTAXES.has(ts))
    throw new ZtvError(
      'unsupported',
      `encapsulated Pixel Data in transfer syntax ${ts} is not supported`,
    );
  if (info.bitsAllocated === 1 && info.frames > 1 && (info.rows * info.columns) % 8 !== 0)
    throw new ZtvError(
      'unsupported',
      'compressed multi-frame 1-bit images whose frames are not byte-aligned are not supported',
    );
  const frames = splitFrames(el.fragments, el.offsetTable ?? [], info.frames, ts);
  // Codecs return every sample of every pixel, whatever subsampling the stream used.
  const fb = frameByteLength({ ...info, photometric: 'RGB' });
  // Allocated once the first frame decoded: a header announcing far more than its stream holds
  // is refused by the codec before gigabytes are reserved for it.
  let data: Uint8Array | undefined;
  let photometric: string | undefined;
  const geometry = {
    rows: info.rows,
    columns: info.columns,
    samplesPerPixel: info.samplesPerPixel,
    bitsAllocated: info.bitsAllocated,
    signed: info.pixelRepresentation === 1,
  };
  const warnings: string[] = [];
  for (let f = 0; f < frames.length; f++) {
    const dec = await decodeFrame(ts, frames[f]!, geometry, info.photometric);
    data ??= new Uint8Array(fb * info.frames);
    data.set(dec.bytes, f * fb);
    if (dec.warning) warnings.push(`frame ${f + 1}: ${dec.warning}`);
    photometric = dec.photometric ?? photometric;
  }
  // Decoded colour comes out colour-by-pixel; the codec may have turned YBR into RGB.
  info = { ...info, planarConfiguration: 0, photometric: photometric ?? info.photometric };
  return {
    info,
    data: data ?? new Uint8Array(0),
    decodedFrom: ts,
    lossy: LOSSY_SYNTAXES.has(ts),
    warnings,
  };
}

/** The VR of native pixel data as we write it: OF/OD for float pixel data, else OW above 8 bits. */
export const nativePixelVr = (info: PixelInfo): string =>
  info.pixelTag === T.FloatPixelData
    ? 'OF'
    : info.pixelTag === T.DoubleFloatPixelData
      ? 'OD'
      : info.bitsAllocated > 8
        ? 'OW'
        : 'OB';

/**
 * States in `ds` the form of its decoded pixels (docs/protection.md, "Decode"): Photometric
 * Interpretation after the codec, Planar Configuration 0, Lossy Image Compression 01 when the source
 * was lossy. Nothing changes for pixels that were native already.
 */
export function stateDecodedForm(ds: DataSet, px: NativePixels): void {
  if (!px.decodedFrom) return;
  ds.setText(T.PhotometricInterpretation, 'CS', px.info.photometric);
  if (px.info.samplesPerPixel > 1) ds.setUint16(T.PlanarConfiguration, 0);
  if (px.lossy && !ds.has(T.LossyImageCompression)) ds.setText(T.LossyImageCompression, 'CS', '01');
}

/**
 * Decodes, in place, encapsulated pixel data nested in sequence items (Icon Image Sequence): a data
 * set written in a native transfer syntax cannot hold it (DCMTK refuses such a file). Each item's
 * own pixel module describes its pixels; its decoded form is stated as for the main image.
 */
export async function decodeNestedPixelData(
  ds: DataSet,
  transferSyntax: string,
  depth = 0,
): Promise<string[]> {
  const warnings: string[] = [];
  if (depth > 32) return warnings;
  for (const el of ds.elements()) {
    for (const item of el.items ?? []) {
      const tag = pixelDataElementTag(item);
      if (tag !== undefined && item.get(tag)!.fragments) {
        const px = await readPixelData({ dataset: item, transferSyntax });
        item.set({ tag, vr: nativePixelVr(px.info), value: px.data });
        stateDecodedForm(item, px);
        warnings.push(
          `decoded the ${px.info.columns}x${px.info.rows} pixel data nested in ${tagString(el.tag)}`,
          ...px.warnings,
        );
      }
      warnings.push(...(await decodeNestedPixelData(item, transferSyntax, depth + 1)));
    }
  }
  return warnings;
}
