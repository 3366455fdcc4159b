// The fast grey conversion (one or two typed-array passes) against the general one, on random images:
// 8- and 16-bit words, any Bits Stored, signed or not, garbage above Bits Stored, edge values, integer
// rescales that do and do not fit Int16, several frames, misaligned buffers. Same values, same array
// kind, same range.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataSet } from '../../core/dicom/dataset.ts';
import type { PixelInfo } from '../../core/dicom/pixels.ts';
import { displayFrame, greyFrameGeneral } from './display.ts';

describe('fast grey display values', () => {
  it('equal the general conversion, array kind and range included', () => {
    let reusedCount = 0;
    fc.assert(
      fc.property(
        fc.record({
          rows: fc.integer({ min: 1, max: 12 }),
          columns: fc.integer({ min: 1, max: 12 }),
          frames: fc.integer({ min: 1, max: 3 }),
          bytes: fc.constantFrom(1, 2),
          cut: fc.integer({ min: 0, max: 15 }),
          signed: fc.boolean(),
          slope: fc.constantFrom(1, 1, 2, -1, 0, 3),
          intercept: fc.constantFrom(0, 0, -1024, -1000, 1024, -32768, 32767, 40000),
          misalign: fc.boolean(),
          edges: fc.boolean(),
          seed: fc.integer(),
        }),
        (r) => {
          const bitsAllocated = 8 * r.bytes;
          const bitsStored = Math.max(1, bitsAllocated - (r.cut % bitsAllocated));
          const info: PixelInfo = {
            rows: r.rows,
            columns: r.columns,
            frames: r.frames,
            samplesPerPixel: 1,
            bitsAllocated,
            bitsStored,
            pixelRepresentation: r.signed ? 1 : 0,
            planarConfiguration: 0,
            photometric: 'MONOCHROME2',
            pixelTag: 0x7fe00010,
          };
          const n = r.rows * r.columns * r.frames * r.bytes;
          const raw = new Uint8Array(n + 1);
          let s = r.seed >>> 0;
          for (let i = 0; i < raw.length; i++) {
            s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
            // Edge values: all ones or all zeros in the stored bits, garbage above them.
            raw[i] = r.edges ? (s >>> 31 ? 0xff : 0x00) ^ ((s >>> 8) & 0xf0) : s >>> 24;
          }
          const data = r.misalign ? raw.subarray(1) : raw.subarray(0, n);
          const ds = new DataSet();
          ds.setText(0x00281053, 'DS', String(r.slope));
          ds.setText(0x00281052, 'DS', String(r.intercept));
          for (let f = 0; f < r.frames; f++) {
            const fast = displayFrame(ds, info, data, f);
            const general = greyFrameGeneral(ds, info, data, f);
            expect(fast.pixels.constructor).toBe(general.pixels.constructor);
            expect(Array.from(fast.pixels)).toEqual(Array.from(general.pixels));
            expect([fast.min, fast.max]).toEqual([general.min, general.max]);
            // In place, on a copy filling its own buffer: the same frame, over that buffer when
            // it is one 16-bit frame (else a new array, as without the option).
            const own = data.slice();
            const inPlace = displayFrame(ds, info, own, f, { inPlace: true });
            expect(inPlace.pixels.constructor).toBe(general.pixels.constructor);
            expect(Array.from(inPlace.pixels)).toEqual(Array.from(general.pixels));
            expect([inPlace.min, inPlace.max]).toEqual([general.min, general.max]);
            const reused = inPlace.pixels.buffer === own.buffer;
            if (reused) reusedCount++;
            expect(reused).toBe(
              r.bytes === 2 && r.frames === 1 && !(inPlace.pixels instanceof Float32Array),
            );
          }
        },
      ),
      { numRuns: 500 },
    );
    expect(reusedCount).toBeGreaterThan(20);
  });
});
