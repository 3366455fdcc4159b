// Slice positions as the consultation answer carries them.
import { describe, expect, it } from 'vitest';
import { slicePosition } from './outsourcing.ts';

describe('slice positions', () => {
  it('reads z from Image Position (Patient), keeping 0 and negative positions', () => {
    expect(slicePosition('-170.5\\-190.2\\-302.5')).toBe(-302.5);
    expect(slicePosition('0\\0\\0')).toBe(0);
    expect(slicePosition('1\\2\\ 12.25 ')).toBe(12.25);
  });

  it('gives null when there is no usable z', () => {
    expect(slicePosition(undefined)).toBeNull();
    expect(slicePosition('1\\2')).toBeNull();
    expect(slicePosition('1\\2\\')).toBeNull();
    expect(slicePosition('1\\2\\abc')).toBeNull();
  });
});
