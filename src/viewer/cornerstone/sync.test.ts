// Which viewports of a layout are synchronised: those whose series share a Frame of Reference UID,
// directly or through another viewport; a viewport showing nothing (no UIDs) joins none.
import { describe, expect, it } from 'vitest';
import { syncGroups, type SyncMember } from './sync.ts';

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
