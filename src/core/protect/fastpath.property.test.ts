// Property tests for the specialised fast paths of opening: each is compared with the general path it
// replaces, on random synthetic inputs (sizes, layouts, bit depths, signedness, saturated extremes,
// garbage and single-bit damage). Same bytes out, or the same error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readRegionBits, writeRegionBits } from './container.ts';
import { valueRange, type Geometry } from './geometry.ts';
import { hide, recover, recoversWords, recoverWords, type HidingParams } from './hiding.ts';
import { readValues, writeValues, type Values } from './samples.ts';

const geometry = fc
  .record({
    frames: fc.integer({ min: 1, max: 2 }),
    rows: fc.integer({ min: 2, max: 24 }),
    cols: fc.integer({ min: 1, max: 24 }),
    spp: fc.constantFrom(1, 1, 3, 4),
    planar: fc.boolean(),
    wordBytes: fc.constantFrom(1 as const, 2 as const),
    signed: fc.boolean(),
    depthCut: fc.integer({ min: 0, max: 13 }),
    shortLastRow: fc.integer({ min: 0, max: 23 }),
  })
  .map(({ depthCut, shortLastRow, ...r }): Geometry => {
    const bitsStored = Math.max(3, r.wordBytes * 8 - depthCut);
    // A short last row only exists for packed 1-bit data, which is one plane of bytes.
    const packed = r.spp === 1 && r.frames === 1 && r.wordBytes === 1 && shortLastRow > 0;
    const lastRowCols = packed ? Math.max(1, r.cols - (shortLastRow % r.cols)) : r.cols;
    return {
      ...r,
      planar: r.planar && r.spp > 1,
      bitsStored: packed ? 8 : bitsStored,
      signed: packed ? false : r.signed,
      lastRowCols,
      unitWidth: 1,
      packedBits: packed,
      count: r.frames * r.rows * r.cols * r.spp - (r.cols - lastRowCols),
    };
  });

/** Content styles: smooth, noise, saturated extremes (the location map), constant at an end. */
function content(g: Geometry, style: number, seed: number): Values {
  const { min, max } = valueRange(g);
  const out = new Int32Array(g.count);
  let s = seed >>> 0;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < g.count; i++) {
    let v: number;
    if (style === 0) v = min + ((max - min) >> 1) + Math.floor(rnd() * 3) - 1;
    else if (style === 1) v = min + Math.floor(rnd() * (max - min + 1));
    else if (style === 2)
      v = (rnd() < 0.5 ? min : max) + Math.floor(rnd() * 3) * (rnd() < 0.5 ? 1 : -1);
    else v = rnd() < 0.5 ? min : max;
    out[i] = Math.max(min, Math.min(max, v));
  }
  return out;
}

/** The general path on a copy: values read, `recover`, written back. */
function general(
  bytes: Uint8Array,
  g: Geometry,
  K: number,
  L: number,
  p: HidingParams,
  bits: number,
): { ok: Uint8Array } | { error: string } {
  try {
    return { ok: writeValues(bytes, g, recover(readValues(bytes, g), g, { K, L }, p, bits)) };
  } catch (e) {
    return { error: String((e as Error).message) };
  }
}

/** The fast path on a copy (aligned, or at an odd byte offset to take the byte-wise route). */
function fast(
  bytes: Uint8Array,
  g: Geometry,
  K: number,
  L: number,
  p: HidingParams,
  bits: number,
  misalign: boolean,
): { ok: Uint8Array } | { error: string } {
  let data = bytes.slice();
  if (misalign) {
    const buf = new Uint8Array(bytes.length + 1);
    buf.set(bytes, 1);
    data = buf.subarray(1);
  }
  try {
    return { ok: recoverWords(data, g, { K, L }, p, bits).slice() };
  } catch (e) {
    return { error: String((e as Error).message) };
  }
}

const same = (a: { ok: Uint8Array } | { error: string }, b: typeof a): void => {
  if ('ok' in a && 'ok' in b) expect(Buffer.from(b.ok).equals(Buffer.from(a.ok))).toBe(true);
  else expect(b).toEqual(a);
};

describe('recoverWords (fast) against recover (general)', () => {
  it('restores hidden images to the same bytes, the high bits of every word kept', () => {
    let embedded = 0;
    fc.assert(
      fc.property(
        geometry,
        fc.constantFrom(0, 0, 0, 1, 2, 3),
        fc.integer(),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(0, 1, 2, 3, 4, 16, 100),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        (g, style, seed, K0, L0, T, k, misalign) => {
          const values = content(g, style, seed);
          const L = Math.max(1, Math.min(L0, g.bitsStored - 2));
          const K = Math.min(K0, g.count - 1);
          const p = { T, k };
          const hidden = hide(values, g, { K, L }, p);
          if (!hidden) return;
          embedded++;
          // Random high bits above bitsStored, and arbitrary container bits in R's low planes.
          const noise = new Uint8Array(g.count * g.wordBytes).map(
            (_, i) => (Math.imul(i + 1, seed | 1) >>> 7) & 0xff,
          );
          const marked = hidden.marked.slice();
          for (let i = 0; i < K; i++) {
            const P = 2 ** L;
            marked[i] = marked[i]! - (((marked[i]! % P) + P) % P) + ((seed >>> (i % 31)) & (P - 1));
          }
          const bytes = writeValues(noise, g, marked);
          expect(recoversWords(g, { K, L }, p)).toBe(true);
          const a = general(bytes, g, K, L, p, hidden.payloadBits);
          const b = fast(bytes, g, K, L, p, hidden.payloadBits, misalign);
          same(a, b);
          expect(
            'ok' in a && Buffer.from(a.ok).equals(Buffer.from(writeValues(noise, g, values))),
          ).toBe(true);
        },
      ),
      { numRuns: 1000, seed: 20261201 },
    );
    expect(embedded).toBeGreaterThan(150); // exercised, not vacuously true
  });

  it('gives the same bytes or the same error on damaged and garbage input', () => {
    const outcomes = { ok: 0, error: 0 };
    fc.assert(
      fc.property(
        geometry,
        fc.integer(),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom(0, 1, 1, 2, 2, 5, 16, 255, 0xffff),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.constantFrom('hidden', 'flip', 'flip', 'garbage'),
        fc.boolean(),
        (g, seed, K0, L0, T, k, bits0, kind, misalign) => {
          const L = Math.max(1, Math.min(L0, g.bitsStored - 1));
          const K = Math.min(K0, kind === 'garbage' ? g.count : g.count - 1);
          const p = { T, k };
          let bytes: Uint8Array;
          let bits = bits0;
          const noise = new Uint8Array(g.count * g.wordBytes).map(
            (_, i) => (Math.imul(i + 7, seed | 1) >>> 9) & 0xff,
          );
          const hidden =
            kind === 'garbage'
              ? undefined
              : hide(content(g, seed & 1 ? 0 : seed & 3, seed), g, { K, L }, p);
          if (hidden) {
            bytes = writeValues(noise, g, hidden.marked);
            if (kind === 'flip') {
              const at = Math.abs(seed) % (bytes.length * 8);
              bytes[at >>> 3]! ^= 1 << (at & 7);
            }
            if (bits0 % 5 !== 0) bits = hidden.payloadBits;
          } else bytes = noise;
          expect(recoversWords(g, { K, L }, p)).toBe(true);
          const a = general(bytes, g, K, L, p, bits);
          same(a, fast(bytes, g, K, L, p, bits, misalign));
          outcomes['ok' in a ? 'ok' : 'error']++;
        },
      ),
      { numRuns: 1000, seed: 20261202 },
    );
    // Both outcomes were compared: restorations of damaged images and every kind of refusal.
    expect(outcomes.ok).toBeGreaterThan(50);
    expect(outcomes.error).toBeGreaterThan(300);
  });

  it('declines what it does not handle, so that the general decoder runs', () => {
    const g: Geometry = {
      frames: 1,
      rows: 4,
      cols: 4,
      lastRowCols: 4,
      spp: 1,
      planar: false,
      wordBytes: 4,
      bitsStored: 32,
      signed: false,
      unitWidth: 1,
      packedBits: false,
      count: 16,
    };
    expect(recoversWords(g, { K: 2, L: 1 }, { T: 1, k: 1 })).toBe(false);
    const g16 = { ...g, wordBytes: 2 as const, bitsStored: 16 };
    expect(recoversWords(g16, { K: 2, L: 1 }, { T: 1, k: 1 })).toBe(true);
    expect(recoversWords(g16, { K: 2, L: 1 }, { T: 0x10000, k: 1 })).toBe(false);
    expect(recoversWords(g16, { K: 2, L: 1 }, { T: 1, k: 9 })).toBe(false);
    expect(recoversWords(g16, { K: 2, L: 1 }, { T: 1, k: 0 })).toBe(false);
    expect(recoversWords(g16, { K: 17, L: 1 }, { T: 1, k: 1 })).toBe(false);
  });
});

/** The container's bit placement as first written, bit by bit: the reference for the loops. */
function referenceRead(data: Uint8Array, wb: number, L: number, from: number, count: number) {
  const out = new Uint8Array(Math.ceil(count / 8));
  for (let s = 0; s < count; s++) {
    const n = from + s;
    const plane = L - 1 - (n % L);
    const byte = Math.floor(n / L) * wb + (plane >>> 3);
    if ((data[byte]! >>> (plane & 7)) & 1) out[s >>> 3]! |= 0x80 >>> (s & 7);
  }
  return out;
}

function referenceWrite(
  data: Uint8Array,
  wb: number,
  L: number,
  bits: Uint8Array,
  from: number,
  count: number,
) {
  for (let s = 0; s < count; s++) {
    const n = from + s;
    const plane = L - 1 - (n % L);
    const bit = (bits[s >>> 3]! >>> (7 - (s & 7))) & 1;
    const byte = Math.floor(n / L) * wb + (plane >>> 3);
    const m = 1 << (plane & 7);
    data[byte] = bit ? data[byte]! | m : data[byte]! & ~m;
  }
}

describe('container bit placement', () => {
  it('reads and writes the same bits as the bit-by-bit reference, at any offset', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4),
        fc.integer({ min: 1, max: 8 }),
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.nat(),
        fc.nat(),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (wb, L, data, from0, count0, bits) => {
          const samples = Math.floor(data.length / wb);
          const total = samples * L;
          const from = total > 0 ? from0 % total : 0;
          const count = Math.min(total - from, count0 % 512);
          const g = { wordBytes: wb } as Geometry;
          expect(readRegionBits(data, g, L, from, count)).toEqual(
            referenceRead(data, wb, L, from, count),
          );
          const a = data.slice();
          const b = data.slice();
          writeRegionBits(a, g, L, bits, from, count);
          referenceWrite(b, wb, L, bits, from, count);
          expect(a).toEqual(b);
        },
      ),
      { numRuns: 500 },
    );
  });
});
