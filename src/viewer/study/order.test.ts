// Slice order: along the normal of the slice orientation, not along z alone; by listed z, then by
// Instance Number, when geometry is missing.
import { describe, expect, it } from 'vitest';
import { sliceOrder } from './order.ts';

describe('slice order', () => {
  it('sorts axial slices by z, ascending, whatever the instance numbers', () => {
    const ax = [1, 0, 0, 0, 1, 0] as const;
    expect(
      sliceOrder([
        { ref: 'a', number: 1, z: null, position: [0, 0, 30], orientation: ax },
        { ref: 'b', number: 2, z: null, position: [0, 0, -10], orientation: ax },
        { ref: 'c', number: 3, z: null, position: [0, 0, 10], orientation: ax },
      ]),
    ).toEqual(['b', 'c', 'a']);
  });

  it('sorts sagittal slices along x, their normal', () => {
    const sag = [0, 1, 0, 0, 0, -1] as const; // normal (-1, 0, 0)
    expect(
      sliceOrder([
        { ref: 'a', number: 1, z: 5, position: [10, 0, 5], orientation: sag },
        { ref: 'b', number: 2, z: 5, position: [-10, 0, 5], orientation: sag },
        { ref: 'c', number: 3, z: 5, position: [0, 0, 5], orientation: sag },
      ]),
    ).toEqual(['a', 'c', 'b']);
  });

  it('falls back to the listed z, then to the instance number', () => {
    expect(
      sliceOrder([
        { ref: 'a', number: 3, z: 2 },
        { ref: 'b', number: 1, z: 9 },
        { ref: 'c', number: 2, z: 2 },
      ]),
    ).toEqual(['c', 'a', 'b']);
    expect(
      sliceOrder([
        { ref: 'a', number: 3, z: null },
        { ref: 'b', number: 1, z: 4 },
      ]),
    ).toEqual(['b', 'a']);
  });
});
