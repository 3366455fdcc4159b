// The hidden payload's side information is read from a possibly forged image before anything is
// trusted: a location map that would inflate far beyond what its entry count needs (a few
// kilobytes that inflate to megabytes) is refused as an integrity failure, without inflating it all.
import { deflateSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { ZtvError } from '../errors.ts';
import { BitWriter, writeVarint } from './bits.ts';
import type { Geometry } from './geometry.ts';
import { hide, recover, recoverWords, type Prepared } from './hiding.ts';
import { writeValues } from './samples.ts';

const g: Geometry = {
  frames: 1,
  rows: 256,
  cols: 256,
  lastRowCols: 256,
  spp: 1,
  planar: false,
  wordBytes: 2,
  bitsStored: 12,
  signed: false,
  unitWidth: 1,
  packedBits: false,
  count: 256 * 256,
};
const region = { K: 0, L: 1 };
const params = { T: 2, k: 2 };

/** A flat image (all the room it needs) carrying a payload whose map claims `entries` entries. */
function forged(entries: number, map: Uint8Array): { marked: Int32Array; bits: number } {
  const values = new Int32Array(g.count).fill(2048);
  const packed = deflateSync(map, { level: 9 });
  const w = new BitWriter(64 + packed.length * 8);
  w.write(1, 8); // the payload's version
  writeVarint(w, 0); // d (zigzag)
  writeVarint(w, entries);
  writeVarint(w, packed.length);
  w.writeBytes(packed);
  // Handed to hide as a prepared payload (its values and margin match, so hide embeds it as is).
  const prepared: Prepared = {
    payload: w.bytes(),
    bits: w.length,
    d: 0,
    clamped: values.slice(),
    of: { values, K: region.K, L: region.L, M: params.T * (2 ** params.k - 1) },
  };
  const hidden = hide(values, g, region, params, prepared);
  if (!hidden) throw new Error('the test image has no room for the forged payload');
  return { marked: hidden.marked as Int32Array, bits: hidden.payloadBits };
}

describe('the hidden location map, forged', () => {
  it('is refused, by both decoders, when it inflates beyond what its entries can take', () => {
    // One entry takes at most 8 bytes; 4 MiB of zeros deflates to ~4 kB.
    const { marked, bits } = forged(1, new Uint8Array(4 * 1024 * 1024));
    expect(() => recover(marked, g, region, params, bits)).toThrow(
      new ZtvError('integrity', 'the hidden location map inflates beyond its entries'),
    );
    const bytes = writeValues(new Uint8Array(g.count * 2), g, marked);
    expect(() => recoverWords(bytes, g, region, params, bits)).toThrow(
      /the hidden location map inflates beyond its entries/,
    );
  });

  it('is refused when it claims more entries than the image has samples', () => {
    const { marked, bits } = forged(g.count + 1, new Uint8Array(16));
    expect(() => recover(marked, g, region, params, bits)).toThrow(
      /more entries than the image has samples/,
    );
  });
});
