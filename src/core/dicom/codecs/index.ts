/**
 * Decodes compressed pixel data frames with the codecs the imaging field uses in browsers and Node:
 * Cornerstone's WebAssembly builds of libjpeg-turbo, CharLS, OpenJPEG and OpenJPH, Cornerstone's
 * JPEG Lossless decoder, fflate for deflate, our RLE decoder and our 12-bit JPEG decoder
 * (jpeg-extended.ts: the IJG arithmetic, where the one inside @cornerstonejs/dicom-image-loader is
 * biased). Output is native little-endian, colour-by-pixel.
 */
import { Decoder as JpegLosslessDecoder } from '@cornerstonejs/jpeg-lossless-decoder-js';
import { ZtvError } from '../../errors.ts';
import { inflateCapped } from '../../inflate.ts';
import { TS } from '../tags.ts';
import { decodeJpeg } from './jpeg-extended.ts';
import { decodeRleFrame } from './rle.ts';

export interface FrameGeometry {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  signed: boolean;
}

export interface DecodedFrame {
  bytes: Uint8Array;
  /** Something a strict decoder would have refused but we decoded anyway, in words. */
  warning?: string;
  /** Photometric Interpretation of the decoded samples when the codec changed it (YBR → RGB). */
  photometric?: string;
}

/** Emscripten adopts the object it is given as its Module: every codec needs its own. */
const quiet = () => ({ print: () => {}, printErr: () => {} });
const modules = new Map<string, Promise<EmscriptenCodecModule>>();

function load(
  name: string,
  factory: () => Promise<{ default: EmscriptenCodecFactory }>,
): Promise<EmscriptenCodecModule> {
  let m = modules.get(name);
  if (!m) {
    m = factory().then((mod) => mod.default(quiet()));
    modules.set(name, m);
  }
  return m;
}

const charls = () => load('charls', () => import('@cornerstonejs/codec-charls/decodewasmjs'));
const openjpeg = () => load('openjpeg', () => import('@cornerstonejs/codec-openjpeg/decodewasmjs'));
const openjph = () => load('openjph', () => import('@cornerstonejs/codec-openjph/wasmjs'));
const libjpeg = () =>
  load('libjpeg', () => import('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'));

export const COMPRESSED_SYNTAXES: ReadonlySet<string> = new Set([
  TS.JpegBaseline,
  TS.JpegExtended,
  TS.JpegLossless57,
  TS.JpegLosslessSV1,
  TS.JpegLsLossless,
  TS.JpegLsNearLossless,
  TS.J2kLossless,
  TS.J2k,
  TS.Htj2kLossless,
  TS.Htj2kLosslessRpcl,
  TS.Htj2k,
  TS.Rle,
  TS.DeflatedImageFrame,
]);

/** Transfer syntaxes that lose information: the decoded pixels are the reference from then on. */
export const LOSSY_SYNTAXES: ReadonlySet<string> = new Set([
  TS.JpegBaseline,
  TS.JpegExtended,
  TS.JpegLsNearLossless,
  TS.J2k,
  TS.Htj2k,
]);

function frameBytes(g: FrameGeometry): number {
  if (g.bitsAllocated === 1) return Math.ceil((g.rows * g.columns * g.samplesPerPixel) / 8);
  return g.rows * g.columns * g.samplesPerPixel * (g.bitsAllocated / 8);
}

/** Checks a decoder's output size and returns exactly one frame's bytes. */
function fit(out: Uint8Array, g: FrameGeometry, codec: string): Uint8Array {
  const want = frameBytes(g);
  if (out.length < want)
    throw new ZtvError(
      'not-dicom',
      `${codec} produced ${out.length} bytes where the header announces ${want}`,
    );
  return out.slice(0, want);
}

function planarToInterleaved(
  planar: Uint8Array,
  pixels: number,
  spp: number,
  bps: number,
): Uint8Array {
  const out = new Uint8Array(planar.length);
  for (let s = 0; s < spp; s++)
    for (let p = 0; p < pixels; p++)
      for (let b = 0; b < bps; b++)
        out[(p * spp + s) * bps + b] = planar[(s * pixels + p) * bps + b]!;
  return out;
}

/** Copies a smaller decoded frame into the top-left corner of a zero-filled frame of size `g`. */
function padFrame(small: Uint8Array, s: FrameGeometry, g: FrameGeometry): Uint8Array {
  const bpp = g.samplesPerPixel * (g.bitsAllocated / 8);
  const out = new Uint8Array(frameBytes(g));
  for (let y = 0; y < s.rows; y++)
    out.set(small.subarray(y * s.columns * bpp, (y + 1) * s.columns * bpp), y * g.columns * bpp);
  return out;
}

async function runEmscripten(
  mod: EmscriptenCodecModule,
  ctor: 'JpegLSDecoder' | 'J2KDecoder' | 'HTJ2KDecoder' | 'JPEGDecoder',
  frame: Uint8Array,
  g: FrameGeometry,
  codec: string,
): Promise<DecodedFrame> {
  try {
    return await runDecoder(mod, ctor, frame, g, codec);
  } catch (e) {
    if (e instanceof ZtvError) throw e;
    // A trap inside the WebAssembly module ("memory access out of bounds", found by fuzzing, issue
    // 17) may leave its heap corrupt: the module is dropped and loaded afresh on the next frame.
    modules.delete(MODULE_OF[ctor]);
    throw new ZtvError(
      'not-dicom',
      `${codec} failed on a frame (${e instanceof Error ? e.message : String(e)}): the stream is malformed`,
    );
  }
}

const MODULE_OF = {
  JpegLSDecoder: 'charls',
  J2KDecoder: 'openjpeg',
  HTJ2KDecoder: 'openjph',
  JPEGDecoder: 'libjpeg',
} as const;

/**
 * A decoded frame smaller than the header's is padded (a tolerated quirk), but not beyond this
 * factor of its area: a 2 kB JPEG of 100x100 under a header of 65535x8024 made 1.5 GB of zeros
 * (found by fuzzing, issue 17). `large/multiframe.dcm`, the quirk's real case, is 4.4.
 */
const MAX_PADDING = 16;

function assertPaddable(width: number, height: number, g: FrameGeometry, codec: string): void {
  if (width * height * MAX_PADDING < g.columns * g.rows)
    throw new ZtvError(
      'not-dicom',
      `a ${codec} frame is ${width}x${height}, far smaller than the header's ${g.columns}x${g.rows}: refused rather than padded`,
    );
}

async function runDecoder(
  mod: EmscriptenCodecModule,
  ctor: 'JpegLSDecoder' | 'J2KDecoder' | 'HTJ2KDecoder' | 'JPEGDecoder',
  frame: Uint8Array,
  g: FrameGeometry,
  codec: string,
): Promise<DecodedFrame> {
  const dec = new mod[ctor]();
  try {
    dec.getEncodedBuffer(frame.length).set(frame);
    try {
      dec.decode();
    } catch (e) {
      throw new ZtvError(
        'not-dicom',
        `${codec} could not decode a frame (${typeof e === 'number' ? `code ${e}` : String(e)})`,
      );
    }
    const info = dec.getFrameInfo();
    if (!(info.width > 0 && info.height > 0))
      throw new ZtvError(
        'not-dicom',
        `${codec} could not decode a frame: the codestream holds no image`,
      );
    const smaller =
      info.width > 0 &&
      info.height > 0 &&
      info.width <= g.columns &&
      info.height <= g.rows &&
      (info.width < g.columns || info.height < g.rows);
    if (!smaller && (info.width !== g.columns || info.height !== g.rows))
      throw new ZtvError(
        'not-dicom',
        `${codec} frame is ${info.width}x${info.height} but the header says ${g.columns}x${g.rows}`,
      );
    if (smaller) assertPaddable(info.width, info.height, g, codec);
    const fg = smaller ? { ...g, rows: info.height, columns: info.width } : g;
    let out: Uint8Array = new Uint8Array(dec.getDecodedBuffer()); // copy out of the WebAssembly heap
    if (ctor === 'JpegLSDecoder' && g.samplesPerPixel > 1 && dec.getInterleaveMode?.() === 0)
      out = planarToInterleaved(out, fg.rows * fg.columns, g.samplesPerPixel, g.bitsAllocated / 8);
    out = fit(out, fg, codec);
    if (!smaller) return { bytes: out };
    return {
      bytes: padFrame(out, fg, g),
      warning: `a ${codec} frame is ${info.width}x${info.height}, smaller than the header's ${g.columns}x${g.rows}: it was placed at the top left of a zero-filled frame`,
    };
  } finally {
    dec.delete?.();
  }
}

/** Decodes one compressed frame. */
export async function decodeFrame(
  ts: string,
  frame: Uint8Array,
  g: FrameGeometry,
  photometric: string,
): Promise<DecodedFrame> {
  const color = g.samplesPerPixel === 3;
  switch (ts) {
    case TS.Rle:
      return {
        bytes: decodeRleFrame(
          frame,
          g.rows * g.columns,
          g.samplesPerPixel,
          Math.max(1, g.bitsAllocated / 8),
          true,
        ),
      };
    case TS.DeflatedImageFrame: {
      // Inflated no further than the frame its header announces (and a little padding).
      const out = inflateCapped(frame, frameBytes(g) + 65536, 'a Deflated Image Frame');
      return { bytes: fit(out, g, 'Deflate') };
    }
    case TS.JpegLsLossless:
    case TS.JpegLsNearLossless:
      return runEmscripten(await charls(), 'JpegLSDecoder', frame, g, 'JPEG-LS');
    case TS.J2kLossless:
    case TS.J2k: {
      const dec = await runEmscripten(await openjpeg(), 'J2KDecoder', frame, g, 'JPEG 2000');
      return color && photometric.startsWith('YBR') ? { ...dec, photometric: 'RGB' } : dec;
    }
    case TS.Htj2kLossless:
    case TS.Htj2kLosslessRpcl:
    case TS.Htj2k: {
      const dec = await runEmscripten(await openjph(), 'HTJ2KDecoder', frame, g, 'HTJ2K');
      return color && photometric.startsWith('YBR') ? { ...dec, photometric: 'RGB' } : dec;
    }
    case TS.JpegBaseline:
    case TS.JpegExtended: {
      const rgb = color && photometric === 'RGB';
      if (g.bitsAllocated === 8 && !rgb) {
        // libjpeg-turbo reads baseline and 8-bit extended (SOF1) frames alike.
        const dec = await runEmscripten(await libjpeg(), 'JPEGDecoder', frame, g, 'JPEG');
        return color && photometric.startsWith('YBR') ? { ...dec, photometric: 'RGB' } : dec;
      }
      // More than 8 bits, or RGB coded without a colour transform (DICOM's Photometric
      // Interpretation says what the stream holds; libjpeg-turbo would guess YCbCr and convert):
      // the IJG arithmetic, in jpeg-extended.ts, without colour conversion.
      if (color && !rgb)
        throw new ZtvError(
          'unsupported',
          `${photometric} JPEG frames of ${g.bitsAllocated} bits allocated are not supported`,
        );
      const dec = decodeJpeg(frame);
      if (dec.components !== g.samplesPerPixel)
        throw new ZtvError(
          'not-dicom',
          `a JPEG frame has ${dec.components} components where Samples per Pixel is ${g.samplesPerPixel}`,
        );
      const smaller =
        dec.width <= g.columns &&
        dec.height <= g.rows &&
        (dec.width < g.columns || dec.height < g.rows);
      if (!smaller && (dec.width !== g.columns || dec.height !== g.rows))
        throw new ZtvError(
          'not-dicom',
          `JPEG frame is ${dec.width}x${dec.height} but the header says ${g.columns}x${g.rows}`,
        );
      if (smaller) assertPaddable(dec.width, dec.height, g, 'JPEG');
      const fg = smaller ? { ...g, rows: dec.height, columns: dec.width } : g;
      const wide = g.bitsAllocated > 8;
      const words = new Uint8Array(dec.samples.length * (wide ? 2 : 1));
      if (wide)
        for (let i = 0, j = 0; i < dec.samples.length; i++, j += 2) {
          words[j] = dec.samples[i]! & 0xff;
          words[j + 1] = dec.samples[i]! >> 8;
        }
      else words.set(dec.samples);
      const warnings = [
        ...(dec.warning ? [dec.warning] : []),
        ...(smaller
          ? [
              `a JPEG frame is ${dec.width}x${dec.height}, smaller than the header's ${g.columns}x${g.rows}: it was placed at the top left of a zero-filled frame`,
            ]
          : []),
      ];
      const bytes = smaller ? padFrame(words, fg, g) : fit(words, g, 'JPEG');
      return warnings.length ? { bytes, warning: warnings.join('; ') } : { bytes };
    }
    case TS.JpegLossless57:
    case TS.JpegLosslessSV1: {
      const dec = new JpegLosslessDecoder();
      const copy = frame.slice();
      let out: Uint8Array | Uint16Array;
      try {
        out = dec.decode(copy.buffer, 0, copy.length, g.bitsAllocated <= 8 ? 1 : 2);
      } catch (e) {
        throw new ZtvError('not-dicom', `JPEG Lossless could not decode a frame (${String(e)})`);
      }
      undoPointTransform(frame, out);
      return {
        bytes: fit(new Uint8Array(out.buffer, out.byteOffset, out.byteLength), g, 'JPEG Lossless'),
      };
    }
    default:
      throw new ZtvError('unsupported', `transfer syntax ${ts} is not supported`);
  }
}

/** Precision P (SOF3) and point transform Pt (Al of the first SOS) of a lossless JPEG frame. */
function losslessParameters(frame: Uint8Array): { precision: number; pt: number } | undefined {
  let precision: number | undefined;
  for (let p = 2; p + 4 < frame.length;) {
    if (frame[p] !== 0xff) return undefined;
    const m = frame[p + 1]!;
    if (m === 0xff) {
      p++;
      continue;
    }
    const len = (frame[p + 2]! << 8) | frame[p + 3]!;
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) precision = frame[p + 4];
    if (m === 0xda) {
      const ns = frame[p + 4]!;
      const al = (frame[p + 5 + 2 * ns + 2] ?? 0) & 0x0f;
      return precision === undefined ? undefined : { precision, pt: al };
    }
    p += 2 + len;
  }
  return undefined;
}

/**
 * jpeg-lossless-decoder-js ignores the point transform Pt (ISO 10918-1 H.1.2.1, H.2): it starts
 * each prediction chain at 2^(P−1) instead of 2^(P−Pt−1) and does not scale the result by 2^Pt.
 * Every predictor is a combination of neighbours whose weights sum to one, so the wrong start offsets
 * every reconstructed value by the same constant, modulo 2^16 (H.2.1); this removes it and scales.
 * DCMTK and GDCM agree with the result exactly (odd/GH1376.dcm, Pt = 2).
 */
function undoPointTransform(frame: Uint8Array, out: Uint8Array | Uint16Array): void {
  const lp = losslessParameters(frame);
  if (!lp || lp.pt === 0 || lp.pt >= lp.precision) return;
  const offset = (1 << (lp.precision - lp.pt - 1)) - (1 << (lp.precision - 1));
  const mask = out instanceof Uint8Array ? 0xff : 0xffff;
  for (let i = 0; i < out.length; i++) out[i] = (((out[i]! + offset) & 0xffff) << lp.pt) & mask;
}

const startsWith = (f: Uint8Array | undefined, sig: number[]): boolean =>
  !!f && sig.every((b, i) => f[i] === b);
const startsFrame = (f: Uint8Array | undefined): boolean =>
  startsWith(f, [0xff, 0xd8]) ||
  startsWith(f, [0xff, 0x4f, 0xff, 0x51]) ||
  startsWith(f, [0, 0, 0, 0x0c, 0x6a, 0x50]);

/** Splits encapsulated fragments into frames: by the Basic Offset Table, one per fragment, or by start markers. */
export function splitFrames(
  fragments: Uint8Array[],
  offsetTable: number[],
  frames: number,
  ts: string,
): Uint8Array[] {
  const joinAll = (parts: Uint8Array[]): Uint8Array => {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  if (fragments.length === 0)
    throw new ZtvError('not-dicom', 'encapsulated Pixel Data holds no fragments');
  if (frames === 1) return [joinAll(fragments)];
  if (fragments.length === frames) return fragments;
  if (offsetTable.length === frames) {
    // Offsets count bytes of items (8-byte item header + value) after the first fragment item.
    const starts: number[] = [];
    let pos = 0;
    const positions = fragments.map((f) => {
      const p = pos;
      pos += 8 + f.length;
      return p;
    });
    for (const off of offsetTable) {
      const idx = positions.indexOf(off);
      if (idx < 0)
        throw new ZtvError('not-dicom', 'the Basic Offset Table points between fragments');
      starts.push(idx);
    }
    return starts.map((s, i) => joinAll(fragments.slice(s, starts[i + 1] ?? fragments.length)));
  }
  if (ts === TS.Rle || ts === TS.DeflatedImageFrame)
    throw new ZtvError(
      'not-dicom',
      `${frames} frames need ${frames} fragments in ${ts}, found ${fragments.length}`,
    );
  const out: Uint8Array[][] = [];
  for (const f of fragments) {
    if (startsFrame(f) || out.length === 0) out.push([f]);
    else out[out.length - 1]!.push(f);
  }
  if (out.length !== frames)
    throw new ZtvError(
      'not-dicom',
      `found ${out.length} compressed frames where Number of Frames says ${frames}`,
    );
  return out.map(joinAll);
}
