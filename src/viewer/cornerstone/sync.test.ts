// Which viewports are synchronised: those whose series share a Frame of Reference UID, directly or
// through another viewport; a viewport showing nothing (no UIDs) joins none. Which slice a viewport
// follows to: the nearest by position, on the real CT (axial) and MR (sagittal) headers, only between
// parallel planes.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sampleFiles } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { nearestSlice, syncGroups, type SliceGeometry, type SyncMember } from './sync.ts';

const m = (viewportId: string, ...frames: string[]): SyncMember => ({
  engineId: 'e',
  viewportId,
  frames,
});

describe('syncGroups', () => {
  it('joins viewports sharing a frame of reference, keeps the others apart', () => {
    const groups = syncGroups([m('a', '1', '2'), m('b', '3'), m('c', '2'), m('d')]);
    expect(groups.map((g) => g.map((x) => x.viewportId))).toEqual([['a', 'c']]);
  });

  it('joins through a third viewport (series whose slices each carry another UID)', () => {
    const groups = syncGroups([m('a', '1', '2'), m('b', '3', '4'), m('c', '2', '3'), m('d', '9')]);
    expect(groups.map((g) => g.map((x) => x.viewportId))).toEqual([['a', 'b', 'c']]);
  });

  it('makes no group of one', () => {
    expect(syncGroups([m('a', '1'), m('b', '2')])).toEqual([]);
    expect(syncGroups([m('a'), m('b')])).toEqual([]);
  });
});

const nums = (s: string | undefined) => (s ?? '').split('\\').map(Number);

/** The geometry of the first `n` slices of a sample series, head first (z descending). */
function geometry(sub: string, n: number): SliceGeometry[] {
  return sampleFiles(sub)
    .map((f) => {
      const ds = parseDicom(new Uint8Array(readFileSync(f))).dataset;
      const p = nums(ds.text(T.ImagePositionPatient));
      const o = nums(ds.text(T.ImageOrientationPatient));
      return {
        position: [p[0]!, p[1]!, p[2]!] as const,
        orientation: [o[0]!, o[1]!, o[2]!, o[3]!, o[4]!, o[5]!] as const,
      };
    })
    .sort((a, b) => b.position[2] - a.position[2] || a.position[0] - b.position[0])
    .slice(0, n);
}

describe('nearestSlice', () => {
  const ct = geometry('series/ct_chest_LIDC-IDRI-0314', 16);
  const every2 = ct.filter((_, i) => i % 2 === 0);

  it('follows the same series slice for slice, and a 2 mm series to the same or the nearest position', () => {
    for (const [i, g] of ct.entries()) {
      expect(nearestSlice(g, ct)).toBe(i);
      const j = nearestSlice(g, every2);
      // Every other slice: there exactly, else 1 mm away (the first of two equally near).
      expect(j).toBe(Math.floor(i / 2));
      expect(Math.abs(every2[j]!.position[2] - g.position[2])).toBeLessThanOrEqual(1.0001);
    }
  });

  it('never moves a slice of another plane, nor to an image without geometry', () => {
    const mr = geometry('series/mr_brain_mprage_FNNDSC-adi', 5);
    expect(nearestSlice(ct[3]!, mr)).toBe(-1);
    expect(nearestSlice(mr[0]!, ct)).toBe(-1);
    expect(nearestSlice(ct[3]!, [undefined, ct[2], undefined])).toBe(1);
    expect(nearestSlice(ct[3]!, [])).toBe(-1);
  });
});
