// The tamper campaign's short slice (issue 17; the full one is `npm run bench -- reliability`):
// single-bit flips over every region of protected and traced files of several kinds are never
// accepted and never crash the verifier, and truncations and garbage end in a typed error or a
// verdict other than verified.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  damageCampaign,
  flipCampaign,
  REGIONS,
  subjects as makeSubjects,
  type Subject,
} from '../bench/reliability/tamper.ts';
import { isZtvError } from '../src/core/errors.ts';
import { verifyProtected } from '../src/core/protect/index.ts';
import type { TestKeys } from './keys.ts';

let keys: TestKeys;
let subjects: Subject[];
beforeAll(async () => {
  ({ keys, subjects } = await makeSubjects([
    ['small/CT_small.dcm', 'CT, signed 16-bit'],
    ['small/SC_rgb.dcm', 'RGB'],
    ['small/emri_small.dcm', 'multi-frame'],
    ['small/MR_small_RLE.dcm', 'decoded RLE'],
    ['small/liver.dcm', '1-bit'],
  ]));
});

describe('tamper campaign (slice)', () => {
  it('maps every region of every subject', () => {
    for (const s of subjects)
      for (const r of REGIONS) {
        const region = s.regions.get(r)!;
        if (r === 'ciphertext' || r === 'container' || r === 'trace slot')
          expect(region.bits, `${s.rel} ${r}`).toBeGreaterThan(0);
        // Every bit maps inside the file.
        for (const n of [0, region.bits - 1].filter((x) => x >= 0 && region.bits > 0)) {
          const [byte] = region.at(n);
          expect(byte).toBeLessThan(s.bytes.length);
        }
      }
  });

  it('no single-bit flip in any region is accepted or crashes the verifier', async () => {
    const c = await flipCampaign(subjects, keys, REGIONS.length * 40, 1717, 4);
    expect(c.defects).toEqual([]);
    for (const r of REGIONS) {
      const counts = c.byRegion.get(r)!;
      expect(counts.accepted + counts.crashed, r).toBe(0);
      expect(counts.detected + counts.refused + counts.unverifiable, r).toBeGreaterThan(0);
    }
    // Only a flipped key id may leave the image unverifiable, and only in the sealed parts.
    for (const r of c.unverifiableAt.keys()) expect(['container', 'trace slot']).toContain(r);
  });

  it('truncations and garbage end in a typed error or a verdict other than verified', async () => {
    const c = await damageCampaign(subjects, keys, 60, 60, 7171);
    expect(c.defects).toEqual([]);
    expect(c.truncations + c.garbage).toBe(120);
  });

  // Found by the campaign: a file cut right where its File Meta ends made dicom-parser throw a bare
  // string ("ByteStream: parameter 'position' cannot be greater than or equal to 'byteArray' length").
  it('a file cut right after its File Meta is refused as truncated', async () => {
    for (const s of subjects) {
      const region = s.regions.get('file meta')!;
      const metaEnd = region.at(region.bits - 1)[0] + 1;
      const err = await verifyProtected(s.bytes.slice(0, metaEnd), {
        resolver: keys.resolver,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isZtvError(err) && err.code, `${s.rel}: ${String(err)}`).toBe('truncated');
    }
  });
});
