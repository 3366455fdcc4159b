// The stack of a series with a multi-frame instance: its frames in order, between the single-frame
// instances around it; an instance not yet open stands as one image.
import { describe, expect, it } from 'vitest';
import { entryIndex, stackEntries } from './frames.ts';

describe('stack entries', () => {
  it('expands a multi-frame instance into its frames, in order', () => {
    const e = stackEntries(['a', 'cine', 'b'], (r) => (r === 'cine' ? 3 : 1));
    expect(e.map((x) => x.imageId)).toEqual([
      'zt:a',
      'zt:cine?frame=1',
      'zt:cine?frame=2',
      'zt:cine?frame=3',
      'zt:b',
    ]);
    expect(e.map((x) => x.slice)).toEqual([0, 1, 1, 1, 2]);
    expect(e[3]).toMatchObject({ ref: 'cine', frame: 3, frames: 3 });
    expect(entryIndex(e, 'zt:cine?frame=2')).toBe(2);
    expect(entryIndex(e, 'zt:gone', 'b')).toBe(4);
    expect(entryIndex(e, 'zt:gone')).toBe(-1);
  });

  it('counts an instance not opened yet as one image', () => {
    const e = stackEntries(['a', 'b'], () => undefined);
    expect(e.map((x) => x.imageId)).toEqual(['zt:a', 'zt:b']);
  });
});
