// Confidentiality of what the cloud stores: the protected pixels share no 16-byte run with the
// original and match its samples no more often than chance; no identifying attribute value of the
// source, and not the image key, appears anywhere in the protected file.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { identifyingValues } from '../../../test/identifiers.ts';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../dicom/parse.ts';
import { readPixelData } from '../dicom/pixels.ts';
import { geometryOf } from './geometry.ts';
import { protect } from './protect.ts';
import { readValues } from './samples.ts';

let keys: TestKeys;
beforeAll(async () => {
  keys = await testKeys();
});

const FILES = [
  'series/ct_chest_LIDC-IDRI-0314/000002.dcm',
  'series/mr_brain_mprage_FNNDSC-adi/36749110.dcm',
  'small/CT_small.dcm',
  'small/MR-SIEMENS-DICOM-WithOverlays.dcm',
  'small/dcm_qa_ts_1_explicit_le.dcm',
  'small/US1_J2KR.dcm',
  'small/JPEGwithIcon.dcm',
  'large/MR2_UNCI.dcm',
];

describe.each(FILES)('%s', (rel) => {
  let input: Uint8Array;
  let out: Awaited<ReturnType<typeof protect>>;
  beforeAll(async () => {
    input = new Uint8Array(readFileSync(samplePath(rel)));
    out = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
  });

  it('protected pixel data shares no 16-byte run with the original pixel data', async () => {
    const original = (await readPixelData(parseDicom(input))).data;
    const prot = parseDicom(out.bytes);
    const stored = prot.dataset.get(0x7fe00010)!.value!;
    const runs = new Set<string>();
    for (let i = 0; i + 16 <= original.length; i += 1)
      runs.add(Buffer.from(original.subarray(i, i + 16)).toString('latin1'));
    let shared = 0;
    for (let i = 0; i + 16 <= stored.length; i++)
      if (runs.has(Buffer.from(stored.subarray(i, i + 16)).toString('latin1'))) shared++;
    expect(shared).toBe(0);
  });

  it('protected samples equal the original ones no more often than chance', async () => {
    const original = await readPixelData(parseDicom(input));
    const g = geometryOf(original.info);
    const stored = parseDicom(out.bytes).dataset.get(0x7fe00010)!.value!;
    // Whole words, unused high bits included: a random word matches with probability 2^-bits.
    const bits = g.wordBytes * 8;
    const a = readValues(original.data, { ...g, bitsStored: bits, signed: false });
    const b = readValues(stored, { ...g, bitsStored: bits, signed: false });
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
    const p = 2 ** -bits;
    const mean = a.length * p;
    const sd = Math.sqrt(a.length * p * (1 - p));
    expect(same).toBeLessThanOrEqual(Math.ceil(mean + 6 * sd + 1));
  });

  it('no identifying value of the source, and not the image key, appears in the protected file', () => {
    const ds = parseDicom(input).dataset;
    const haystack = Buffer.from(out.bytes);
    let checked = 0;
    for (const { tag, value } of identifyingValues(ds)) {
      checked++;
      expect(
        haystack.includes(Buffer.from(value, 'latin1')),
        `value of ${tag.toString(16)} leaked`,
      ).toBe(false);
    }
    expect(checked).toBeGreaterThan(2);
    expect(haystack.includes(Buffer.from(out.imageKey))).toBe(false);
    expect(haystack.includes(Buffer.from(out.imageKey.subarray(0, 8)))).toBe(false);
  });
});
