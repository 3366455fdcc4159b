// Reading every real sample: the pixel module and decoded pixel data must agree with the manifest
// that the samples' collector wrote with pydicom, and broken files must fail with one clear error.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MANIFEST } from '../../../test/manifest.ts';
import { samplePath } from '../../../test/samples.ts';
import { isZtvError } from '../errors.ts';
import { parseDicom } from './parse.ts';
import { pixelByteLength, readPixelData } from './pixels.ts';

const read = (rel: string) => parseDicom(new Uint8Array(readFileSync(samplePath(rel))), rel);

const images = MANIFEST.filter(
  (m) => !m.file.startsWith('odd/') && !m.file.startsWith('series/') && m.dims !== 'no image',
);

describe('real samples decode to the pixel geometry the manifest gives', () => {
  it.each(images.map((m) => [m.file, m] as const))('%s', async (file, m) => {
    const px = await readPixelData(read(file));
    const [rows, cols, frames] = m.dims.split('x').map(Number);
    const [ba, bs] = m.bits.split('/').map(Number);
    expect([px.info.rows, px.info.columns, px.info.frames]).toEqual([rows, cols, frames]);
    // Float Pixel Data has no Bits Stored: the manifest leaves it blank.
    expect([px.info.bitsAllocated, px.info.bitsStored]).toEqual([ba, Number.isNaN(bs) ? ba : bs]);
    expect(px.info.pixelRepresentation).toBe(m.signed === 'signed' ? 1 : 0);
    expect(px.data.length).toBe(pixelByteLength(px.info));
    // A decoded image is never all zeros: the decoder really produced pixels.
    expect(px.data.some((b) => b !== 0)).toBe(true);
  });
});

describe('series files parse', () => {
  const series = MANIFEST.filter((m) => m.file.startsWith('series/'));
  it(`all ${series.length} series files have 512x512 or 192x192 pixel data`, async () => {
    for (const m of series) {
      const px = await readPixelData(read(m.file));
      expect(`${px.info.rows}x${px.info.columns}x${px.info.frames}`).toBe(m.dims);
    }
  });
});

describe('compressed and uncompressed encodings of one image decode identically', () => {
  it.each([
    ['small/MR_small.dcm', 'small/MR_small_implicit.dcm'],
    ['small/MR_small.dcm', 'small/MR_small_bigendian.dcm'],
    ['small/MR_small.dcm', 'small/MR_small_RLE.dcm'],
    ['small/MR_small.dcm', 'small/MR_small_jpeg_ls_lossless.dcm'],
    ['small/MR_small.dcm', 'small/MR_small_jp2klossless.dcm'],
    ['small/emri_small.dcm', 'small/emri_small_RLE.dcm'],
    ['small/emri_small.dcm', 'small/emri_small_jpeg_ls_lossless.dcm'],
    ['small/emri_small.dcm', 'small/emri_small_jpeg_2k_lossless.dcm'],
    ['small/dcm_qa_ts_1_explicit_le.dcm', 'small/dcm_qa_ts_2_implicit_le.dcm'],
    ['small/dcm_qa_ts_1_explicit_le.dcm', 'small/dcm_qa_ts_3_explicit_be.dcm'],
    ['small/dcm_qa_ts_1_explicit_le.dcm', 'small/dcm_qa_ts_4_rle.dcm'],
    ['small/dcm_qa_ts_1_explicit_le.dcm', 'small/dcm_qa_ts_5_jpeg_lossless_sv1.dcm'],
    ['small/dcm_qa_ts_1_explicit_le.dcm', 'small/dcm_qa_ts_8_jpegls_lossless.dcm'],
    ['small/dcm_qa_ts_1_explicit_le.dcm', 'small/dcm_qa_ts_9_j2k_lossless.dcm'],
    ['small/SC_rgb.dcm', 'small/SC_rgb_rle.dcm'],
    ['small/liver.dcm', 'small/liver_deflate.dcm'],
  ])('%s = %s', async (a, b) => {
    const pa = await readPixelData(read(a));
    const pb = await readPixelData(read(b));
    expect(pb.data).toEqual(pa.data);
  });
});

describe('broken files fail with one clear sentence', () => {
  it.each([
    ['odd/MR_truncated.dcm', 'truncated'],
    ['odd/rtplan_truncated.dcm', 'truncated'],
    ['odd/meta_missing_tsyntax.dcm', 'not-dicom'],
    ['odd/dwv-test_no-number-rows.dcm', 'unsupported'],
    ['odd/GH340.dcm', 'unsupported'],
  ])('%s → %s', async (file, code) => {
    const err = await (async () => readPixelData(read(file)))().catch((e: unknown) => e);
    expect(isZtvError(err)).toBe(true);
    expect((err as { code: string }).code).toBe(code);
    expect((err as Error).message).not.toMatch(/\n|undefined|\[object/);
  });

  it('a file of random bytes is not DICOM', () => {
    const err = (() => {
      try {
        return parseDicom(new Uint8Array(1000).fill(7), 'noise.bin');
      } catch (e) {
        return e;
      }
    })();
    expect(isZtvError(err) && err.code).toBe('not-dicom');
  });
});
