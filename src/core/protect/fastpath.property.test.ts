// Property tests for the specialised fast paths of opening: each is compared with the general path it
// replaces, on random synthetic inputs (sizes, layouts, bit depths, signedness, saturated extremes,
// garbage and single-bit damage). Same bytes out, or the same error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readRegionBits, writeRegionBits } from './container.ts';
import { forEachTileSegment, tileAt, tileGrid, valueRange, type Geometry } from './geometry.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { u32be } from '../bytes.ts';
import { BitWriter } from './bits.ts';
import {
  ciphertextDigest,
  maskContainer,
  maskedCiphertextDigest,
  tileTags,
  tileTagsAsync,
} from './digests.ts';
import {
  errorHistogram,
  estimateCapacity,
  estimateMapBits,
  hide,
  Hider,
  predictionErrors,
  preparePayload,
  valueHistogram,
  recover,
  recoversWords,
  recoverWords,
  type HidingParams,
} from './hiding.ts';
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

describe('hiding (fast) against hiding (general)', () => {
  it('embeds the same marked values, prepared payload or not, and predicts the same errors', () => {
    let embedded = 0;
    fc.assert(
      fc.property(
        geometry,
        fc.constantFrom(0, 0, 1, 2, 3),
        fc.integer(),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(1, 2, 3, 4, 16, 100),
        fc.integer({ min: 1, max: 8 }),
        (g, style, seed, K0, L0, T, k) => {
          const values = content(g, style, seed);
          const L = Math.max(1, Math.min(L0, g.bitsStored - 2));
          const K = Math.min(K0, g.count - 1);
          const p = { T, k };
          // Float64Array values take the general path (the one for 32-bit samples).
          const general = Float64Array.from(values);
          expect(Array.from(predictionErrors(values, g))).toEqual(
            Array.from(predictionErrors(general, g)),
          );
          const a = hide(general, g, { K, L }, p);
          const b = hide(values, g, { K, L }, p);
          const c = hide(values, g, { K, L }, p, preparePayload(values, g, { K, L }, p));
          expect(b === undefined).toBe(a === undefined);
          expect(c === undefined).toBe(a === undefined);
          if (!a || !b || !c) return;
          embedded++;
          expect(b.payloadBits).toBe(a.payloadBits);
          expect(Array.from(b.marked)).toEqual(Array.from(a.marked));
          expect(Array.from(c.marked)).toEqual(Array.from(a.marked));
        },
      ),
      { numRuns: 800, seed: 20261203 },
    );
    expect(embedded).toBeGreaterThan(100);
  });

  it('plans and embeds as the separate passes do: histograms, map estimates, payloads and bytes (Hider)', () => {
    let fast = 0;
    let embedded = 0;
    fc.assert(
      fc.property(
        geometry,
        fc.constantFrom(0, 0, 1, 2, 3),
        fc.integer(),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(1, 2, 3, 4, 16, 100),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        (g, style, seed, K0, L0, T, k, misalign) => {
          const values = content(g, style, seed);
          const L = Math.max(1, Math.min(L0, g.bitsStored - 2));
          const K = Math.min(K0, g.count - 1);
          const p = { T, k };
          const region = { K, L };
          // Pixel bytes whose bits above bitsStored are noise, at an odd offset or not.
          const raw = new Uint8Array(g.count * g.wordBytes + 1).map(
            (_, i) => (Math.imul(i + 7, seed | 1) >>> 9) & 0xff,
          );
          const data = writeValues(
            misalign ? raw.subarray(1) : raw.subarray(0, g.count * g.wordBytes),
            g,
            values,
          );
          const hider = new Hider(values, g);
          // A second K first: the histogram of one K must not leak into the next.
          for (const k2 of [Math.max(0, K - 3), K]) {
            const a = Float64Array.from(hider.histogram(k2));
            const b = errorHistogram(predictionErrors(values, g), k2);
            expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
          }
          expect(estimateCapacity(hider.histogram(K), p)).toBe(
            estimateCapacity(errorHistogram(predictionErrors(values, g), K), p),
          );
          expect(hider.mapBits(p)).toBe(estimateMapBits(valueHistogram(values, g, 0)!, g, p));
          const want = preparePayload(values, g, region, p);
          const got = hider.prepare(region, p);
          expect(got.bits).toBe(want.bits);
          expect(got.payload).toEqual(want.payload);
          if (got.clamped === undefined) fast++;
          const marked = hide(values, g, region, p, want);
          const bytes = hider.embed(data, region, p, got);
          expect(bytes === undefined).toBe(marked === undefined);
          if (!marked || !bytes) return;
          embedded++;
          expect(Buffer.from(bytes).equals(Buffer.from(writeValues(data, g, marked.marked)))).toBe(
            true,
          );
        },
      ),
      { numRuns: 300, seed: 20261204 },
    );
    expect(fast).toBeGreaterThan(50);
    expect(embedded).toBeGreaterThan(50);
  });

  it('writes bits with shifts exactly as with a division per bit', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 1, max: 32 }),
            fc.oneof(fc.nat(), fc.integer(), fc.maxSafeInteger()),
          ),
          { maxLength: 40 },
        ),
        (writes) => {
          const w = new BitWriter(8);
          const bits: number[] = [];
          for (const [n, v] of writes) {
            w.write(v, n);
            for (let i = n - 1; i >= 0; i--) bits.push(Math.floor(v / 2 ** i) & 1);
          }
          const want = new Uint8Array(Math.ceil(bits.length / 8));
          bits.forEach((b, i) => {
            if (b) want[i >>> 3]! |= 0x80 >>> (i & 7);
          });
          expect(w.length).toBe(bits.length);
          expect(w.bytes()).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('tile tags', () => {
  it('gathered, and through WebCrypto, equal the segment-by-segment reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        geometry,
        fc.integer({ min: 1, max: 40 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer(),
        async (g, side, iv, seed) => {
          const data = new Uint8Array(g.count * g.wordBytes).map(
            (_, i) => (Math.imul(i + 3, seed | 1) >>> 11) & 0xff,
          );
          const grid = tileGrid(g, side);
          // The tags as first computed: an incremental hash fed row segment by row segment.
          const want = new Uint8Array(grid.count * 8);
          for (let n = 0; n < grid.count; n++) {
            const t = tileAt(g, grid, n);
            const h = sha256.create();
            h.update(new TextEncoder().encode('ZTV/tile/v1\0')).update(iv);
            h.update(u32be(t.frame)).update(u32be(t.index));
            forEachTileSegment(g, t, (s, e) => h.update(data.subarray(s, e)));
            want.set(h.digest().subarray(0, 8), n * 8);
          }
          expect(tileTags(data, g, grid, iv)).toEqual(want);
          expect(await tileTagsAsync(data, g, grid, iv)).toEqual(want);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the ciphertext digest without a copy equals the digest of a masked copy, and leaves the bytes as they were', async () => {
    await fc.assert(
      fc.asyncProperty(
        geometry,
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer(),
        fc.boolean(),
        async (g, K0, L, iv, seed, shared) => {
          const n = g.count * g.wordBytes;
          const ct = new Uint8Array(shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
          ct.set(new Uint8Array(n).map((_, i) => (Math.imul(i + 5, seed | 1) >>> 13) & 0xff));
          const before = ct.slice();
          const K = Math.min(K0, g.count);
          const want = await ciphertextDigest(maskContainer(before, g, K, L), iv);
          expect(await maskedCiphertextDigest(ct, g, K, L, iv)).toEqual(want);
          expect(Buffer.from(ct).equals(Buffer.from(before))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
