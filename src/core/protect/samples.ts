/**
 * Sample values in and out of little-endian pixel bytes: the low `bitsStored` bits of each word as a
 * number (two's complement when signed); writing back keeps every bit above `bitsStored` exactly.
 */
import type { Geometry } from './geometry.ts';

/** Int32Array holds up to 16-bit samples; 32-bit words need Float64Array's exact integers. */
export type Values = Int32Array | Float64Array;

/** Images up to this many samples reuse scratch arrays; larger ones get their own. */
const SCRATCH_LIMIT = 1 << 22;
const scratches = new Map<string, Int32Array>();

/**
 * `n` int32 values (contents unspecified) in memory reused by every call that names `slot`: an
 * image-sized array costs about a millisecond to allocate and zero, more than a pass over it. Only
 * for synchronous code (nothing may await between filling it and its last read) and one user per
 * slot at a time.
 */
export function scratchInt32(slot: string, n: number): Int32Array {
  if (n > SCRATCH_LIMIT) return new Int32Array(n);
  let a = scratches.get(slot);
  if (!a || a.length < n) scratches.set(slot, (a = new Int32Array(n)));
  return a.subarray(0, n);
}

/**
 * The sample values of `data`; with `slot`, samples of up to 16 bits go into that scratch array
 * (`scratchInt32`) instead of a new one.
 */
export function readValues(data: Uint8Array, g: Geometry, slot?: string): Values {
  const n = g.count;
  const bs = g.bitsStored;
  if (g.wordBytes === 4) {
    const out = new Float64Array(n);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const span = 2 ** bs;
    const half = span / 2;
    for (let i = 0; i < n; i++) {
      const low = bs === 32 ? dv.getUint32(4 * i, true) : dv.getUint32(4 * i, true) % span;
      out[i] = g.signed && low >= half ? low - span : low;
    }
    return out;
  }
  const out = slot ? scratchInt32(slot, n) : new Int32Array(n);
  const mask = (1 << bs) - 1;
  const shift = 32 - bs;
  if (g.wordBytes === 1) {
    if (g.signed) for (let i = 0; i < n; i++) out[i] = ((data[i]! & mask) << shift) >> shift;
    else for (let i = 0; i < n; i++) out[i] = data[i]! & mask;
    return out;
  }
  const words = wordView(data, n);
  if (words) {
    // Whole 16-bit words convert natively (Int16Array sign-extends); fewer bits go word by word.
    if (bs === 16) out.set(g.signed ? new Int16Array(words.buffer, words.byteOffset, n) : words);
    else if (g.signed) for (let i = 0; i < n; i++) out[i] = ((words[i]! & mask) << shift) >> shift;
    else for (let i = 0; i < n; i++) out[i] = words[i]! & mask;
    return out;
  }
  if (g.signed)
    for (let i = 0; i < n; i++)
      out[i] = (((data[2 * i]! | (data[2 * i + 1]! << 8)) & mask) << shift) >> shift;
  else for (let i = 0; i < n; i++) out[i] = (data[2 * i]! | (data[2 * i + 1]! << 8)) & mask;
  return out;
}

/** Whether this machine stores a Uint16Array's words little-endian, as DICOM's pixel data are. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The first `n` 16-bit little-endian words of `data` as a Uint16Array over the same memory, where
 * that is possible (an even offset, a little-endian machine); undefined otherwise (read bytewise).
 */
function wordView(data: Uint8Array, n: number): Uint16Array | undefined {
  if (!LITTLE_ENDIAN || data.byteOffset % 2 !== 0 || data.length < 2 * n) return undefined;
  return new Uint16Array(data.buffer, data.byteOffset, n);
}

/** Writes `values` into a copy of `data`, replacing only the low `bitsStored` bits of each word. */
export function writeValues(data: Uint8Array, g: Geometry, values: Values): Uint8Array {
  const out = data.slice();
  const n = g.count;
  const bs = g.bitsStored;
  if (g.wordBytes === 4) {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const span = 2 ** bs;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      const low = v < 0 ? v + span : v;
      const word = dv.getUint32(4 * i, true);
      const high = bs === 32 ? 0 : word - (word % span);
      dv.setUint32(4 * i, high + low, true);
    }
    return out;
  }
  const mask = (1 << bs) - 1;
  if (g.wordBytes === 1) {
    for (let i = 0; i < n; i++) out[i] = (out[i]! & ~mask) | (values[i]! & mask);
    return out;
  }
  const words = wordView(out, n);
  if (words) {
    // Uint16Array.set keeps the low 16 bits of each value: exactly the word when bitsStored is 16.
    if (bs === 16) words.set(values);
    else for (let i = 0; i < n; i++) words[i] = (words[i]! & ~mask) | (values[i]! & mask);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const word = (out[2 * i]! | (out[2 * i + 1]! << 8) | 0) & ~mask;
    const w = word | (values[i]! & mask);
    out[2 * i] = w & 0xff;
    out[2 * i + 1] = (w >>> 8) & 0xff;
  }
  return out;
}
