// readValues/writeValues read and write 16-bit words through a Uint16Array view where the pixel data
// sit at an even offset (on little-endian machines): the same values and bytes as the bytewise
// reference below, for every bit depth and signedness, aligned or not, and on real samples.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../dicom/parse.ts';
import { readPixelData } from '../dicom/pixels.ts';
import { geometryOf, type Geometry } from './geometry.ts';
import { readValues, writeValues } from './samples.ts';

/** The bytewise definition: low `bitsStored` bits of each little-endian word, two's complement. */
function refRead(data: Uint8Array, g: Geometry): Int32Array {
  const out = new Int32Array(g.count);
  for (let i = 0; i < g.count; i++) {
    const word = data[2 * i]! | (data[2 * i + 1]! << 8);
    const low = word % 2 ** g.bitsStored;
    out[i] = g.signed && low >= 2 ** (g.bitsStored - 1) ? low - 2 ** g.bitsStored : low;
  }
  return out;
}

function refWrite(data: Uint8Array, g: Geometry, values: Int32Array): Uint8Array {
  const out = data.slice();
  const span = 2 ** g.bitsStored;
  for (let i = 0; i < g.count; i++) {
    const word = out[2 * i]! | (out[2 * i + 1]! << 8);
    const v = ((values[i]! % span) + span) % span;
    const w = word - (word % span) + v;
    out[2 * i] = w & 0xff;
    out[2 * i + 1] = w >>> 8;
  }
  return out;
}

const words = (count: number, bitsStored: number, signed: boolean): Geometry => ({
  frames: 1,
  rows: 1,
  cols: count,
  lastRowCols: count,
  spp: 1,
  planar: false,
  wordBytes: 2,
  bitsStored,
  signed,
  unitWidth: 1,
  packedBits: false,
  count,
});

describe('16-bit samples through a word view', () => {
  it('reads and writes as the bytewise reference does, aligned or not', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 16 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 3 }),
        fc.integer(),
        (count, bits, signed, offset, seed) => {
          const g = words(count, bits, signed);
          // Pixel data at an odd or even offset inside a larger buffer, with a trailing byte.
          const whole = new Uint8Array(offset + 2 * count + 1);
          let s = seed >>> 0;
          for (let i = 0; i < whole.length; i++)
            whole[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
          const data = whole.subarray(offset, offset + 2 * count + 1);
          const values = readValues(data, g);
          expect([...values]).toEqual([...refRead(data, g)]);
          // New values in range (and the extremes), written under the untouched high bits.
          const next = new Int32Array(count);
          const lo = signed ? -(2 ** (bits - 1)) : 0;
          for (let i = 0; i < count; i++) next[i] = lo + ((values[i]! - lo + i * 7919) % 2 ** bits);
          next[0] = lo;
          const out = writeValues(data, g, next);
          expect(Buffer.from(out).equals(Buffer.from(refWrite(data, g, next)))).toBe(true);
          expect([...readValues(out, g)]).toEqual([...next]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    'small/CT_small.dcm',
    'small/emri_small.dcm',
    'small/gdcm-CR-MONO1-10-chest.dcm',
    'small/JLSL_16_15_1_1F.dcm',
    'small/CT1_UNC.explicit_little_endian.dcm',
  ])('reads %s as the bytewise reference does', async (rel) => {
    const px = await readPixelData(parseDicom(new Uint8Array(readFileSync(samplePath(rel))), rel));
    const g = geometryOf(px.info);
    expect(g.wordBytes).toBe(2);
    const values = readValues(px.data, g);
    expect(
      Buffer.from(new Int32Array(values).buffer).equals(Buffer.from(refRead(px.data, g).buffer)),
    ).toBe(true);
    expect(Buffer.from(writeValues(px.data, g, values)).equals(Buffer.from(px.data))).toBe(true);
  });
});
