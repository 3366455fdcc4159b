// Whether a series forms a volume, on the geometry of the real CT (axial) and MR (sagittal) series
// read from their files, and on the same geometry with one slice missing, one slice turned, one
// slice moved in plane, two slices at one place, a single image; and the volume's integrity badge.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sampleFiles } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { checkVolume, mprBadge, type MprSlice } from './mpr-model.ts';

const nums = (s: string | undefined) => (s ?? '').split('\\').map(Number);

/** The slices of a sample series as the viewer sees them, in display order along the normal. */
function series(sub: string, n: number): MprSlice[] {
  const slices = sampleFiles(sub).map((f) => {
    const ds = parseDicom(new Uint8Array(readFileSync(f))).dataset;
    const o = nums(ds.text(T.ImageOrientationPatient));
    const p = nums(ds.text(T.ImagePositionPatient));
    const sp = nums(ds.text(T.PixelSpacing));
    return {
      slice: 0,
      instanceNumber: ds.number(T.InstanceNumber)!,
      rows: ds.number(T.Rows)!,
      columns: ds.number(T.Columns)!,
      frames: 1,
      color: false,
      pixelSpacing: [sp[0]!, sp[1]!] as const,
      imagePosition: [p[0]!, p[1]!, p[2]!] as const,
      imageOrientation: [o[0]!, o[1]!, o[2]!, o[3]!, o[4]!, o[5]!] as const,
      state: 'verified' as const,
    };
  });
  const o = slices[0]!.imageOrientation;
  const normal = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
  const along = (s: MprSlice) => s.imagePosition!.reduce((a, x, i) => a + x * normal[i]!, 0);
  // The first n slices along the normal: contiguous (the files' names do not follow the positions).
  return slices
    .sort((a, b) => along(a) - along(b))
    .slice(0, n)
    .map((s, i) => ({ ...s, slice: i + 1 }));
}

const CT = 'series/ct_chest_LIDC-IDRI-0314';
const MR = 'series/mr_brain_mprage_FNNDSC-adi';

describe('checkVolume', () => {
  it('accepts the real CT; refuses the real MR, which lacks a slice', () => {
    const ct = checkVolume(series(CT, 150));
    expect(ct).toEqual({ ok: true, spacing: expect.closeTo(1.0, 3) as number });
    // The real MR series steps 1 mm, except once: 2 mm between instances 114 and 116 (no 115).
    const mr = checkVolume(series(MR, 175));
    expect(!mr.ok && mr.reason).toBe(
      'Irregular spacing: 2.00 mm between slice 114 (instance 114) and slice 115 (instance 116), 1.00 mm between the others (a missing slice?).',
    );
    expect(checkVolume(series(MR, 114)).ok).toBe(true);
  });

  it('refuses a single image, and a single multi-frame image', () => {
    const one = series(CT, 1);
    expect(checkVolume(one)).toEqual({
      ok: false,
      reason: expect.stringMatching(/single image/) as string,
    });
    const multi = checkVolume([{ ...one[0]!, frames: 10 }]);
    expect(multi.ok || multi.reason).toMatch(/multi-frame/);
  });

  it('refuses irregular spacing (a slice missing), naming the slices around the gap', () => {
    const ct = series(CT, 20);
    const gap = [...ct.slice(0, 9), ...ct.slice(10)];
    const r = checkVolume(gap);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(
      /^Irregular spacing: 2\.00 mm between slice 9 .* and slice 11 /,
    );
  });

  it('refuses mixed orientation, a tilted stack and two slices at one place', () => {
    const ct = series(CT, 10);
    const turned = ct.map((s, i) =>
      i === 4 ? { ...s, imageOrientation: [1, 0, 0, 0, 0, -1] as const } : s,
    );
    const r = checkVolume(turned);
    expect(!r.ok && r.reason).toMatch(/^Mixed orientation: slice 5 /);
    const tilted = ct.map((s, i) => ({
      ...s,
      imagePosition: [
        s.imagePosition![0],
        s.imagePosition![1] + i * 0.5,
        s.imagePosition![2],
      ] as const,
    }));
    const tl = checkVolume(tilted);
    expect(!tl.ok && tl.reason).toMatch(/tilted gantry/);
    const twice = [...ct.slice(0, 5), { ...ct[4]!, slice: 6 }, ...ct.slice(5)];
    const t = checkVolume(twice);
    expect(!t.ok && t.reason).toMatch(/same position/);
  });

  it('waits for every slice, and refuses a slice that could not be opened', () => {
    const ct = series(CT, 10);
    const { state: _pending, ...open } = ct[3]!;
    const waiting = checkVolume(ct.map((s, i) => (i === 3 ? open : s)));
    expect(!waiting.ok && waiting.reason).toMatch(/^Not every slice is open yet \(1 of 10/);
    const failed = checkVolume(ct.map((s, i) => (i === 3 ? { ...open, failed: true } : s)));
    expect(!failed.ok && failed.reason).toMatch(/^Slice 4 \(instance \d+\) could not be opened/);
  });
});

describe('mprBadge', () => {
  it('is Verified only if every slice is, and names the slices that are not', () => {
    const ct = series(CT, 20);
    expect(mprBadge(ct)).toEqual({ state: 'verified', title: 'Verified — all 20 slices' });
    const one = ct.map((s, i) => (i === 17 ? { ...s, state: 'tampered' as const } : s));
    const b = mprBadge(one);
    expect(b.state).toBe('tampered');
    expect(b.title).toBe(`Tampered — tampered: slice 18 (instance ${ct[17]!.instanceNumber})`);
    const mixed = one.map((s, i) => (i === 2 ? { ...s, state: 'unverifiable' as const } : s));
    expect(mprBadge(mixed).title).toMatch(
      /^Tampered — tampered: slice 18 \(instance \d+\); unverifiable: slice 3 \(instance \d+\)$/,
    );
    const unver = ct.map((s, i) => (i === 0 ? { ...s, state: 'unverifiable' as const } : s));
    expect(mprBadge(unver)).toEqual({
      state: 'unverifiable',
      title: `Unverifiable — unverifiable: slice 1 (instance ${ct[0]!.instanceNumber})`,
    });
  });
});
