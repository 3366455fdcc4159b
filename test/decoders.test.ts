// Decoder conformance over every compressed sample: our decoded pixels against a reference decoder —
// DCMTK's dcmdjpeg (JPEG baseline, extended, lossless), dcmdjpls (JPEG-LS) and dcmdrle (RLE); GDCM's
// gdcmconv --raw for JPEG 2000 (DCMTK has no J2K decoder); OpenJPEG's opj_decompress for HTJ2K
// (GDCM 3.0 does not know its transfer syntaxes, Debian's libopenjp2-tools 2.5); zlib (node:zlib) for Deflated Image Frames.
// Lossless syntaxes must agree exactly, lossy ones within ±1 per sample; a disagreement names the
// file, the number of samples that differ, the largest difference and the mean difference.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync, inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { LOSSY_SYNTAXES, splitFrames } from '../src/core/dicom/codecs/index.ts';
import { parseDicom, type ParsedDicom } from '../src/core/dicom/parse.ts';
import {
  frameByteLength,
  pixelInfoOf,
  readPixelData,
  type PixelInfo,
} from '../src/core/dicom/pixels.ts';
import { TS } from '../src/core/dicom/tags.ts';
import { isZtvError } from '../src/core/errors.ts';
import { SAMPLES, sampleFiles } from './samples.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ztv-decoders-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Samples our decoder refuses, and why (docs/protection.md). */
const REFUSED: Record<string, string> = {
  'odd/JPEG2000-embedded-sequence-delimiter.dcm': 'not-dicom',
};

/**
 * Frames where the reference lays out a frame differently, by design: large/multiframe.dcm holds JPEG
 * frames narrower than its 240x240 header (55 columns); we place them at the top left of a zero
 * frame, DCMTK writes their rows end to end (a sheared image). Frames of full width but fewer rows
 * agree, as does every other frame.
 */
const FRAMES_LAID_OUT_DIFFERENTLY: Record<string, number[]> = {
  'large/multiframe.dcm': [14, 28, 42, 56, 70, 84, 98, 112, 126, 140],
};

const read = (path: string): ParsedDicom => parseDicom(new Uint8Array(readFileSync(path)), path);

const compressed = ['small', 'large', 'odd']
  .flatMap((set) => sampleFiles(set))
  .filter((f) => {
    try {
      const p = read(f);
      const info = pixelInfoOf(p.dataset);
      return !!p.dataset.get(info.pixelTag)?.fragments;
    } catch {
      return false; // not an image, or unreadable: the conformance test covers those
    }
  });

interface Reference {
  readonly tool: string;
  readonly info: PixelInfo;
  readonly data: Uint8Array;
}

/** The frames of an encapsulated pixel data element, as our parser splits them. */
function framesOf(parsed: ParsedDicom): { info: PixelInfo; frames: Uint8Array[] } {
  const info = pixelInfoOf(parsed.dataset);
  const el = parsed.dataset.get(info.pixelTag)!;
  return {
    info,
    frames: splitFrames(el.fragments!, el.offsetTable ?? [], info.frames, parsed.transferSyntax),
  };
}

/** Colour-by-plane frames as colour-by-pixel, so that any reference compares with our output. */
function byPixel(info: PixelInfo, data: Uint8Array): Uint8Array {
  if (info.samplesPerPixel === 1 || info.planarConfiguration === 0) return data;
  const bps = info.bitsAllocated / 8;
  const fb = frameByteLength(info);
  const pixels = info.rows * info.columns;
  const out = new Uint8Array(data.length);
  for (let f = 0; f < info.frames; f++)
    for (let s = 0; s < 3; s++)
      for (let p = 0; p < pixels; p++)
        for (let b = 0; b < bps; b++)
          out[f * fb + (p * 3 + s) * bps + b] = data[f * fb + (s * pixels + p) * bps + b]!;
  return out;
}

async function viaTool(tool: string, args: string[], file: string, n: number): Promise<Reference> {
  const out = join(dir, `${n}.dcm`);
  await run(tool, [...args, file, out], { maxBuffer: 1 << 26 });
  const px = await readPixelData(read(out));
  rmSync(out, { force: true });
  return { tool, info: px.info, data: byPixel(px.info, px.data) };
}

/** J2K or HTJ2K frames through OpenJPEG 2.5's opj_decompress, little-endian raw samples, by plane. */
async function viaOpenJpeg(parsed: ParsedDicom, n: number): Promise<Reference> {
  const { info, frames } = framesOf(parsed);
  const parts: Uint8Array[] = [];
  for (const [i, frame] of frames.entries()) {
    const inp = join(dir, `${n}-${i}.j2c`);
    const out = join(dir, `${n}-${i}.rawl`);
    writeFileSync(inp, frame);
    await run('opj_decompress', ['-quiet', '-i', inp, '-o', out]);
    parts.push(new Uint8Array(readFileSync(out)));
  }
  const planar = { ...info, planarConfiguration: 1 as const, photometric: 'RGB' };
  const data = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  const rgb = info.samplesPerPixel === 3 && info.photometric.startsWith('YBR') ? 'RGB' : undefined;
  return {
    tool: 'opj_decompress',
    info: { ...info, planarConfiguration: 0, photometric: rgb ?? info.photometric },
    data: byPixel(planar, data),
  };
}

function viaZlib(parsed: ParsedDicom): Reference {
  const { info, frames } = framesOf(parsed);
  const fb = frameByteLength(info);
  const data = new Uint8Array(fb * frames.length);
  frames.forEach((f, i) => {
    let raw: Buffer;
    try {
      raw = inflateRawSync(f);
    } catch {
      raw = inflateSync(f);
    }
    data.set(raw.subarray(0, fb), i * fb);
  });
  return { tool: 'zlib', info, data };
}

async function reference(file: string, parsed: ParsedDicom, n: number): Promise<Reference> {
  switch (parsed.transferSyntax) {
    case TS.JpegBaseline:
    case TS.JpegExtended:
    case TS.JpegLossless57:
    case TS.JpegLosslessSV1:
      return viaTool('dcmdjpeg', ['+px'], file, n);
    case TS.JpegLsLossless:
    case TS.JpegLsNearLossless:
      return viaTool('dcmdjpls', ['+px'], file, n);
    case TS.Rle:
      return viaTool('dcmdrle', [], file, n);
    case TS.J2kLossless:
    case TS.J2k:
      // GDCM refuses a file whose encapsulation is broken (odd/emri_small_jpeg_2k_lossless_too_short
      // lacks its sequence delimiter); OpenJPEG then decodes the codestreams themselves.
      return viaTool('gdcmconv', ['--raw'], file, n).catch(() => viaOpenJpeg(parsed, n));
    case TS.Htj2kLossless:
    case TS.Htj2kLosslessRpcl:
    case TS.Htj2k:
      return viaOpenJpeg(parsed, n);
    case TS.DeflatedImageFrame:
      return viaZlib(parsed);
    default:
      throw new Error(`no reference decoder for ${parsed.transferSyntax}`);
  }
}

/** The samples as numbers, by Bits Allocated and Pixel Representation. */
function samples(info: PixelInfo, data: Uint8Array): ArrayLike<number> {
  const b = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  if (info.bitsAllocated === 16)
    return info.pixelRepresentation ? new Int16Array(b) : new Uint16Array(b);
  if (info.bitsAllocated === 32)
    return info.pixelRepresentation ? new Int32Array(b) : new Uint32Array(b);
  return new Uint8Array(b);
}

describe('our decoders agree with the reference decoders on every compressed sample', () => {
  it('finds the compressed samples', () => {
    expect(compressed.length).toBeGreaterThan(40);
  });

  it.each(compressed.map((f, n) => [relative(SAMPLES, f), f, n] as const))(
    '%s',
    async (rel, file, n) => {
      const parsed = read(file);
      let ours;
      try {
        ours = await readPixelData(parsed);
      } catch (e) {
        expect(isZtvError(e) ? e.code : e, `${rel}: ${(e as Error).message}`).toBe(REFUSED[rel]);
        return;
      }
      expect(REFUSED[rel], `${rel} decodes, yet is listed as refused`).toBeUndefined();
      const ref = await reference(file, parsed, n);
      expect(ours.info.photometric, `${rel}: photometric of ours vs ${ref.tool}`).toBe(
        ref.info.photometric,
      );
      const a = samples(ours.info, ours.data);
      const b = samples(ref.info, ref.data);
      expect(a.length, `${rel}: sample count, ours vs ${ref.tool}`).toBe(b.length);
      const lossy = LOSSY_SYNTAXES.has(parsed.transferSyntax);
      const perFrame = a.length / ours.info.frames;
      const tolerance = lossy ? 1 : 0;
      let differ = 0;
      let max = 0;
      let sum = 0;
      const framesOff: number[] = [];
      const laidOut = new Set(FRAMES_LAID_OUT_DIFFERENTLY[rel] ?? []);
      for (let f = 0; f < ours.info.frames; f++) {
        let frameMax = 0;
        for (let i = f * perFrame; i < (f + 1) * perFrame; i++) {
          const d = a[i]! - b[i]!;
          frameMax = Math.max(frameMax, Math.abs(d));
          if (laidOut.has(f + 1)) continue;
          if (d !== 0) differ++;
          max = Math.max(max, Math.abs(d));
          sum += d;
        }
        if (frameMax > tolerance) framesOff.push(f + 1);
      }
      const figures = `${rel} (${parsed.transferSyntax}) against ${ref.tool}: ${differ} of ${a.length} samples differ, largest difference ${max}, mean ${(sum / a.length).toFixed(3)}`;
      expect(max, figures).toBeLessThanOrEqual(tolerance);
      expect(framesOff, `${rel}: frames beyond ±${tolerance}`).toEqual([...laidOut]);
    },
    300_000,
  );
});
