// Display order: axial from the head down, sagittal from the patient's right, coronal from the front,
// along the normal of the slice orientation whichever way its vectors point; by listed z (head first),
// then by Instance Number, when geometry is missing.
import { describe, expect, it } from 'vitest';
import { sliceOrder } from './order.ts';

describe('slice order', () => {
  it('runs axial slices from the head down (z descending), whatever the instance numbers', () => {
    const ax = [1, 0, 0, 0, 1, 0] as const;
    expect(
      sliceOrder([
        { ref: 'a', number: 1, z: null, position: [0, 0, 30], orientation: ax },
        { ref: 'b', number: 2, z: null, position: [0, 0, -10], orientation: ax },
        { ref: 'c', number: 3, z: null, position: [0, 0, 10], orientation: ax },
      ]),
    ).toEqual(['a', 'c', 'b']);
    // The same slices with a flipped row vector (normal towards the feet): the same order.
    const flipped = [-1, 0, 0, 0, 1, 0] as const;
    expect(
      sliceOrder([
        { ref: 'a', number: 1, z: null, position: [0, 0, 30], orientation: flipped },
        { ref: 'b', number: 2, z: null, position: [0, 0, -10], orientation: flipped },
        { ref: 'c', number: 3, z: null, position: [0, 0, 10], orientation: flipped },
      ]),
    ).toEqual(['a', 'c', 'b']);
  });

  it("runs sagittal slices from the patient's right (x ascending)", () => {
    const sag = [0, 1, 0, 0, 0, -1] as const; // normal (-1, 0, 0)
    expect(
      sliceOrder([
        { ref: 'a', number: 1, z: 5, position: [10, 0, 5], orientation: sag },
        { ref: 'b', number: 2, z: 5, position: [-10, 0, 5], orientation: sag },
        { ref: 'c', number: 3, z: 5, position: [0, 0, 5], orientation: sag },
      ]),
    ).toEqual(['b', 'c', 'a']);
  });

  it('runs coronal slices from the front (y ascending)', () => {
    const cor = [1, 0, 0, 0, 0, -1] as const; // normal (0, 1, 0)
    expect(
      sliceOrder([
        { ref: 'a', number: 1, z: 0, position: [0, 40, 0], orientation: cor },
        { ref: 'b', number: 2, z: 0, position: [0, -40, 0], orientation: cor },
        { ref: 'c', number: 3, z: 0, position: [0, 0, 0], orientation: cor },
      ]),
    ).toEqual(['b', 'c', 'a']);
  });

  it('falls back to the listed z (head first), then to the instance number', () => {
    expect(
      sliceOrder([
        { ref: 'a', number: 3, z: 2 },
        { ref: 'b', number: 1, z: 9 },
        { ref: 'c', number: 2, z: 2 },
      ]),
    ).toEqual(['b', 'c', 'a']);
    expect(
      sliceOrder([
        { ref: 'a', number: 3, z: null },
        { ref: 'b', number: 1, z: 4 },
      ]),
    ).toEqual(['b', 'a']);
  });
});
