// Deliberately broken or unusual files: each protects and round-trips, or fails with one clear
// sentence (a ZtvError) — never a crash, a hang or a vague message.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { sampleFiles } from '../../../test/samples.ts';
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
  'GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm': 'not-dicom',
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
  });
});
