// Deliberately broken or unusual files: each protects and round-trips, or fails with one clear
// sentence (a ZtvError) — never a crash, a hang or a vague message.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { sampleFiles, samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../dicom/parse.ts';
import { readPixelData } from '../dicom/pixels.ts';
import { isZtvError } from '../errors.ts';
import { openProtected, protect } from './index.ts';

let keys: TestKeys;
beforeAll(async () => {
  keys = await testKeys();
});

/** What each odd file must give: a verified round trip, or an error of this code. */
const EXPECTED: Record<string, 'roundtrip' | string> = {
  '12bitSigned_0x0F0F.dcm': 'roundtrip',
  '12bitUnsigned_0x0F0F.dcm': 'roundtrip',
  '693_J2KI.dcm': 'roundtrip',
  'CR-MONO1-10-chest_nometa.dcm': 'roundtrip',
  'ExplVR_BigEndNoMeta.dcm': 'unsupported',
  'ExplVR_LitEndNoMeta.dcm': 'unsupported',
  'GH1376.dcm': 'roundtrip',
  // Explicit VR Big Endian with a UN sequence of undefined length, whose items are Implicit VR
  // Little Endian as PS3.5 6.2.2 says: valid, read since the big-endian path handles that case.
  'GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm': 'roundtrip',
  'GH340.dcm': 'unsupported',
  'J2K_pixelrep_mismatch.dcm': 'roundtrip',
  'JPEG2000-embedded-sequence-delimiter.dcm': 'not-dicom',
  'MR_small_padded.dcm': 'roundtrip',
  'MR_truncated.dcm': 'truncated',
  'SC_rgb_small_odd.dcm': 'capacity',
  'badVR.dcm': 'capacity', // 10x10 samples: far too few for a container
  'dwv-test_no-number-rows.dcm': 'unsupported',
  'emri_small_jpeg_2k_lossless_too_short.dcm': 'roundtrip',
  'liver_nonbyte_aligned.dcm': 'roundtrip',
  'meta_missing_tsyntax.dcm': 'not-dicom',
  'no_meta.dcm': 'roundtrip',
  'rtplan_truncated.dcm': 'truncated',
};

describe('odd/ files give a correct result or a clear error', () => {
  const files = sampleFiles('odd');
  it('the table covers every odd file', () => {
    expect(files.map((f) => f.split('/').pop()).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(files.map((f) => [f.split('/').pop()!, f] as const))('%s', async (name, path) => {
    const input = new Uint8Array(readFileSync(path));
    const expected = EXPECTED[name];
    let outcome: unknown;
    try {
      const p = await protect(input, {
        signer: keys.producer,
        pseudonymKey: keys.pseudonymKey,
        what: name,
      });
      const o = await openProtected(p.bytes, { resolver: keys.resolver, imageKey: p.imageKey });
      expect(o.verdict.status, o.verdict.summary).toBe('verified');
      const original = await readPixelData(parseDicom(input, name));
      expect(Buffer.from(o.restored!.pixels).equals(Buffer.from(original.data))).toBe(true);
      outcome = 'roundtrip';
    } catch (e) {
      if (!isZtvError(e)) throw e;
      expect(e.message).not.toMatch(/\n|\bundefined\b|\[object|NaN|Infinity/);
      expect(e.message.length).toBeLessThan(300);
      outcome = e.code;
    }
    expect(outcome).toBe(expected);
  });

  it('GH177: Explicit VR Big Endian with an undefined-length UN sequence is read, not refused', async () => {
    const odd = (n: string) =>
      new Uint8Array(readFileSync(sampleFiles('odd').find((f) => f.includes(n))!));
    const gh177 = parseDicom(odd('GH177_'), 'GH177');
    // The same NEMA CT1 image, stored Explicit VR Little Endian in small/: the same samples.
    const le = parseDicom(
      new Uint8Array(readFileSync(samplePath('small/CT1_UNC.explicit_little_endian.dcm'))),
    );
    expect(gh177.transferSyntax).toBe('1.2.840.10008.1.2.2');
    const [a, b] = [await readPixelData(gh177), await readPixelData(le)];
    expect(a.data.length).toBe(512 * 512 * 2);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    // (0008,2112) Source Image Sequence: UN, undefined length, items in Implicit VR Little Endian.
    const seq = gh177.dataset.get(0x00082112);
    expect(seq?.vr).toBe('SQ');
    expect(seq?.items?.length).toBe(1);
    expect(seq!.items![0]!.text(0x00081150)).toBe('1.2.840.10008.5.1.4.1.1.2'); // CT Image Storage
    // And it protects, verifies and restores, the sequence included.
    const p = await protect(odd('GH177_'), {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
    });
    const o = await openProtected(p.bytes, { resolver: keys.resolver, imageKey: p.imageKey });
    expect(o.verdict.status, o.verdict.summary).toBe('verified');
    const restored = o.restored!.dataset.get(0x00082112);
    expect(restored?.items?.[0]?.text(0x00081155)).toBe(seq!.items![0]!.text(0x00081155));
  });

  it('an image too small for the container says how many bits it needs and has', async () => {
    const input = new Uint8Array(
      readFileSync(sampleFiles('odd').find((f) => f.endsWith('SC_rgb_small_odd.dcm'))!),
    );
    const err = await protect(input, {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
    }).catch((e: unknown) => e);
    expect(isZtvError(err) && err.code).toBe('capacity');
    expect((err as Error).message).toMatch(/needs at least \d+ bits .* offers about \d+/);
    // 3x3 RGB: 27 samples, while the smallest container (464 bytes = 3712 bits, plus 128 bits of
    // side information) needs a region of 619 samples even in the 6 planes an 8-bit image allows.
    expect((err as { details: unknown }).details).toEqual({
      neededBits: 3840,
      availableBits: 0,
      samples: 27,
      regionSamples: 619,
      planes: 6,
    });
    expect((err as Error).message).toMatch(/619 samples in 6 bit planes, is larger than the image/);
  });
});
