/**
 * Reversible data hiding that reserves room before encryption: prediction-error expansion with
 * histogram shifting (after Ni et al. 2006 and Thodi & Rodríguez 2007) on whole sample values.
 *
 * Samples [0, K) form the region R whose `L` low bit planes will hold the public container; their
 * original low bits travel, with the side information, hidden in the other samples. Each other sample
 * is predicted (MED, as in JPEG-LS) from its already scanned neighbours in the same plane; a
 * prediction error e in [-T, T) is expanded to e·2^k + b and carries k payload bits, errors outside
 * are shifted by T·(2^k − 1) so the decoder can tell them apart. No value may leave the sample's
 * range: before embedding, values within M = T·(2^k − 1) of either end are clamped inward and a
 * location map (deflated) records by how much — it is part of the payload and undone last.
 * Embedding stops with the payload's last bit; later samples are untouched.
 */
import { deflateSync } from 'fflate';
import { inflateCapped } from '../inflate.ts';
import { ZtvError } from '../errors.ts';
import { BitReader, BitWriter, readVarint, writeVarint } from './bits.ts';
import { planesOf, valueRange, type Geometry } from './geometry.ts';
import { scratchInt32, writeValues, type Values } from './samples.ts';

export interface HidingParams {
  /** Threshold: errors in [-T, T) are expanded. */
  readonly T: number;
  /** Payload bits per expanded sample. */
  readonly k: number;
}

export interface Region {
  /** Samples [0, K) are the container region R. */
  readonly K: number;
  /** Low bit planes of R that the container occupies. */
  readonly L: number;
}

const PAYLOAD_VERSION = 1;

const margin = (p: HidingParams): number => p.T * (2 ** p.k - 1);

/** Clears the low L bits of a value (two's complement floor to a multiple of 2^L). */
function maskLow(v: number, L: number): number {
  const P = 2 ** L;
  return v - (((v % P) + P) % P);
}

/** Calls fn(index, prediction-context indices…) for every sample in scan order. */
type Visit = (idx: number, a: number, b: number, c: number, x: number, y: number) => boolean;

/** Scans planes row by row; `visit` returns false to stop. a/b/c are −1 where a neighbour is missing. */
function scan(g: Geometry, visit: Visit): void {
  for (const p of planesOf(g)) {
    for (let y = 0; y < p.height; y++) {
      const w = y === p.height - 1 ? p.lastRowWidth : p.width;
      const row = p.base + y * p.yStride;
      for (let x = 0; x < w; x++) {
        const idx = row + x * p.xStride;
        const a = x > 0 ? idx - p.xStride : -1;
        const b = y > 0 ? idx - p.yStride : -1;
        const c = x > 0 && y > 0 ? idx - p.yStride - p.xStride : -1;
        if (!visit(idx, a, b, c, x, y)) return;
      }
    }
  }
}

/** MED / LOCO-I predictor from left (a), top (b) and top-left (c) values. */
function predict(w: Values, a: number, b: number, c: number): number {
  if (a < 0) return b < 0 ? 0 : w[b]!;
  if (b < 0) return w[a]!;
  const va = w[a]!;
  const vb = w[b]!;
  const vc = w[c]!;
  const mx = va > vb ? va : vb;
  const mn = va > vb ? vb : va;
  if (vc >= mx) return mn;
  if (vc <= mn) return mx;
  return va + vb - vc;
}

/**
 * MED of int32 neighbours a (left), b (top), c (top-left): the median of a, b and a + b − c, as
 * `predict` computes it, without branches — on real images' noise those mispredict, and the
 * branching form made each loop over the samples about three times slower. Exact while the
 * operands stay within ±2^28 (values of up to 16 bits, with their offsets and shifts).
 */
function medInt(a: number, b: number, c: number): number {
  const dab = a - b;
  const m = dab & (dab >> 31); // min(a − b, 0)
  const mn = b + m;
  const mx = a - m;
  let t = a + b - c;
  let d = t - mx;
  t = mx + (d & (d >> 31)); // min(t, mx)
  d = t - mn;
  return mn + (d & ~(d >> 31)); // max(t, mn)
}

/** Prediction errors: exact integers; Int32Array for samples of up to 16 bits. */
export type Errors = Float64Array | Int32Array;

/** Prediction errors of every sample, from unclamped values (an estimate: hiding clamps first). */
export function predictionErrors(values: Values, g: Geometry): Errors {
  if (values instanceof Int32Array && g.bitsStored <= 16) return predictionErrorsInt(values, g);
  const errors = new Float64Array(values.length);
  scan(g, (idx, a, b, c) => {
    errors[idx] = values[idx]! - predict(values, a, b, c);
    return true;
  });
  return errors;
}

/**
 * `predictionErrors` for values of up to 16 bits, without callbacks (errors fit in 18 bits), into
 * `errors`; with `hist`, each error is counted there too, at e + HIST_LIMIT (|e| < 2^16 for values
 * of 16 bits), in the same pass.
 */
export function predictionErrorsInt(
  values: Int32Array,
  g: Geometry,
  errors: Int32Array = new Int32Array(values.length),
  hist?: Int32Array,
): Int32Array {
  for (const pl of planesOf(g)) {
    const xs = pl.xStride;
    const ys = pl.yStride;
    for (let y = 0; y < pl.height; y++) {
      const width = y === pl.height - 1 ? pl.lastRowWidth : pl.width;
      const row = pl.base + y * ys;
      if (width <= 0) continue;
      errors[row] = values[row]! - (y === 0 ? 0 : values[row - ys]!);
      if (hist) hist[errors[row]! + HIST_LIMIT]!++;
      if (y === 0) {
        for (let x = 1, idx = row + xs; x < width; x++, idx += xs)
          errors[idx] = values[idx]! - values[idx - xs]!;
        if (hist)
          for (let x = 1, idx = row + xs; x < width; x++, idx += xs)
            hist[errors[idx]! + HIST_LIMIT]!++;
      } else if (hist) {
        for (let x = 1, idx = row + xs; x < width; x++, idx += xs) {
          const va = values[idx - xs]!;
          const vb = values[idx - ys]!;
          const vc = values[idx - ys - xs]!;
          const e = values[idx]! - medInt(va, vb, vc);
          errors[idx] = e;
          hist[e + HIST_LIMIT]!++;
        }
      } else {
        for (let x = 1, idx = row + xs; x < width; x++, idx += xs) {
          const va = values[idx - xs]!;
          const vb = values[idx - ys]!;
          const vc = values[idx - ys - xs]!;
          const pred = medInt(va, vb, vc);
          errors[idx] = values[idx]! - pred;
        }
      }
    }
  }
  return errors;
}

const HIST_LIMIT = 1 << 16;

/** Histogram of the errors of samples [K, n): the ones that would carry the payload. */
export function errorHistogram(errors: Errors, K: number): Float64Array {
  const hist = new Float64Array(2 * HIST_LIMIT + 1);
  for (let i = K; i < errors.length; i++) {
    const e = errors[i]!;
    hist[e < -HIST_LIMIT ? 0 : e > HIST_LIMIT ? 2 * HIST_LIMIT : e + HIST_LIMIT]!++;
  }
  return hist;
}

/**
 * A cheap lower-bound-ish estimate of the location map's size for margin M, from a histogram of
 * sample values (order-0 entropy of the clamping distances), so that hopeless parameters are skipped
 * before the exact (deflated) map is built. Returns 0 when one offset fits all values inside.
 */
export function estimateMapBits(valueHist: Float64Array, g: Geometry, p: HidingParams): number {
  const { min, max } = valueRange(g);
  const M = margin(p);
  const lo = min + M;
  const hi = max - M;
  let vmin = 0;
  while (vmin < valueHist.length && valueHist[vmin] === 0) vmin++;
  let vmax = valueHist.length - 1;
  while (vmax > 0 && valueHist[vmax] === 0) vmax--;
  if (vmax - vmin <= hi - lo - 2) return 0;
  let n = 0;
  let bits = 0;
  const side = (from: number, to: number): void => {
    for (let v = from; v <= to; v++) n += valueHist[v - min] ?? 0;
  };
  side(min, lo);
  side(hi, max);
  if (n === 0) return 0;
  const entropy = (from: number, to: number): void => {
    for (let v = from; v <= to; v++) {
      const c = valueHist[v - min] ?? 0;
      if (c > 0) bits -= c * Math.log2(c / n);
    }
  };
  entropy(min, lo);
  entropy(hi, max);
  return bits;
}

/** Histogram of sample values [K, n) indexed by value − min (only for samples of ≤ 16 bits). */
export function valueHistogram(values: Values, g: Geometry, K: number): Float64Array | undefined {
  if (g.bitsStored > 16) return undefined;
  const { min } = valueRange(g);
  const hist = new Float64Array(2 ** g.bitsStored);
  for (let i = K; i < values.length; i++) hist[values[i]! - min]!++;
  return hist;
}

/** Estimated capacity in bits of (T, k) from an error histogram. */
export function estimateCapacity(hist: Float64Array | Int32Array, p: HidingParams): number {
  const LIMIT = (hist.length - 1) / 2;
  let n = 0;
  for (let e = Math.max(-p.T, -LIMIT); e < Math.min(p.T, LIMIT); e++) n += hist[e + LIMIT]!;
  return n * p.k;
}

/** Whether the value range leaves room for the clamping margin of `p`. */
export function fitsRange(g: Geometry, p: HidingParams): boolean {
  const { min, max } = valueRange(g);
  return max - min >= 2 * margin(p) + 2;
}

export interface Hidden {
  /** Marked values: R unchanged, other samples carrying the payload. */
  readonly marked: Values;
  readonly payloadBits: number;
}

/** A payload built for (values, region, margin): what `hide` embeds, and the clamped values. */
export interface Prepared {
  readonly payload: Uint8Array;
  readonly bits: number;
  /** The offset every value of [K, n) moved by. */
  readonly d: number;
  /**
   * The values mapped into range; absent when no value was clamped (then they are the values
   * of [K, n) plus `d`, and R's as they were).
   */
  readonly clamped?: Values;
  /** What it was built for: `hide` uses it only for exactly these, and builds its own otherwise. */
  readonly of: {
    readonly values: Values;
    readonly K: number;
    readonly L: number;
    readonly M: number;
  };
}

/** The payload `hide` would embed with these parameters (one clamping pass), to size and reuse. */
export function preparePayload(
  values: Values,
  g: Geometry,
  region: Region,
  p: HidingParams,
): Prepared {
  const built = buildPayload(values, g, region, p);
  return { ...built, of: { values, K: region.K, L: region.L, M: margin(p) } };
}

/** The offset `d` for values of [K, n) spanning [vmin, vmax]: 0 when they do not fit the room. */
const offsetFor = (vmin: number, vmax: number, lo: number, hi: number): number =>
  // Strictly inside (lo, hi): then no sample sits on lo or hi, and the decoder needs no map.
  vmax - vmin <= hi - lo - 2 ? lo + 1 - vmin : 0;

/** Smallest and largest of values [from, n). */
function rangeOf(values: Values, from: number): { vmin: number; vmax: number } {
  let vmin = Infinity;
  let vmax = -Infinity;
  for (let i = from; i < values.length; i++) {
    const v = values[i]!;
    if (v < vmin) vmin = v;
    if (v > vmax) vmax = v;
  }
  return { vmin, vmax };
}

/**
 * Maps the values into [lo, hi] so no later ±M change can leave the sample range. When the image's
 * values span less than the room, one offset `d` shifts them inside and nothing else is recorded;
 * otherwise values beyond lo/hi are clamped and the location map records how far beyond they were.
 */
function buildPayload(
  values: Values,
  g: Geometry,
  region: Region,
  p: HidingParams,
): { payload: Uint8Array; bits: number; d: number; clamped: Values } {
  const { min, max } = valueRange(g);
  const M = margin(p);
  const lo = min + M;
  const hi = max - M;
  const clamped = values.slice() as Values;
  const { vmin, vmax } = rangeOf(clamped, region.K);
  const d = offsetFor(vmin, vmax, lo, hi);
  const lm = new BitWriter(4096);
  let entries = 0;
  for (let i = region.K; i < clamped.length; i++) {
    const v = clamped[i]! + d;
    if (v <= lo) {
      writeVarint(lm, lo - v);
      clamped[i] = lo;
      entries++;
    } else if (v >= hi) {
      writeVarint(lm, v - hi);
      clamped[i] = hi;
      entries++;
    } else clamped[i] = v;
  }
  const lmPacked = entries > 0 ? deflateSync(lm.bytes(), { level: 9 }) : new Uint8Array(0);
  return { ...payloadOf(values, region, d, entries, lmPacked), d, clamped };
}

/** The payload's bits: version, `d`, the location map (deflated), then R's original low bits. */
function payloadOf(
  values: Values,
  region: Region,
  d: number,
  entries: number,
  lmPacked: Uint8Array,
): { payload: Uint8Array; bits: number } {
  const w = new BitWriter(96 + lmPacked.length * 8 + region.K * region.L);
  w.write(PAYLOAD_VERSION, 8);
  writeVarint(w, zigzag(d));
  writeVarint(w, entries);
  writeVarint(w, lmPacked.length);
  w.writeBytes(lmPacked);
  const P = 2 ** region.L;
  for (let i = 0; i < region.K; i++) w.write(((values[i]! % P) + P) % P, region.L);
  return { payload: w.bytes(), bits: w.length };
}

/** A copy of the values with those of [K, n) moved by d. */
function shifted(values: Values, K: number, d: number): Values {
  const out = values.slice() as Values;
  for (let i = K; i < out.length; i++) out[i] = out[i]! + d;
  return out;
}

const zigzag = (n: number): number => (n >= 0 ? 2 * n : -2 * n - 1);
const unzigzag = (z: number): number => (z % 2 === 0 ? z / 2 : -(z + 1) / 2);

/**
 * Hides R's low bits and the side information in the other samples. Returns undefined when the
 * image does not have the capacity for these parameters.
 */
export function hide(
  values: Values,
  g: Geometry,
  region: Region,
  p: HidingParams,
  prepared?: Prepared,
): Hidden | undefined {
  if (!fitsRange(g, p)) return undefined;
  const reuse =
    prepared !== undefined &&
    prepared.of.values === values &&
    prepared.of.K === region.K &&
    prepared.of.L === region.L &&
    prepared.of.M === margin(p);
  const built = reuse ? prepared : buildPayload(values, g, region, p);
  const { payload, bits } = built;
  // Context: original clamped values, with R's container planes cleared (the decoder sees only those).
  // Writing R's part is idempotent, so a prepared payload can serve several parameter sets.
  const ctx = built.clamped ?? shifted(values, region.K, built.d);
  for (let i = 0; i < region.K; i++) ctx[i] = maskLow(values[i]!, region.L);
  const marked = ctx.slice() as Values;
  for (let i = 0; i < region.K; i++) marked[i] = values[i]!;
  if (ctx instanceof Int32Array && marked instanceof Int32Array && recoversWords(g, region, p)) {
    const done = embedWords(ctx, marked, g, region.K, p.T, p.k, payload, bits);
    return done < bits ? undefined : { marked, payloadBits: bits };
  }
  const reader = new BitReader(payload, bits);
  const { T, k } = p;
  const scale = 2 ** k;
  const shift = T * (scale - 1);
  let done = 0;
  scan(g, (idx, a, b, c) => {
    if (idx < region.K) return true;
    const pred = predict(ctx, a, b, c);
    const e = ctx[idx]! - pred;
    let e2: number;
    if (e >= -T && e < T) {
      const take = Math.min(k, bits - done);
      const chunk = reader.read(take) * 2 ** (k - take);
      done += take;
      e2 = e * scale + chunk;
    } else e2 = e >= T ? e + shift : e - shift;
    marked[idx] = pred + e2;
    return done < bits;
  });
  return done < bits ? undefined : { marked, payloadBits: bits };
}

/**
 * `hide`'s embedding for words of up to 16 bits (`recoversWords`), without callbacks: MED inline as
 * in `extractWords`, int32 arithmetic (exact: |e| < T ≤ 2^16, k ≤ 8), payload bits read through a
 * 16-bit window. Returns how many payload bits went in (all of them when the image had room).
 */
function embedWords(
  ctx: Int32Array,
  marked: Int32Array,
  g: Geometry,
  K: number,
  T: number,
  k: number,
  payload: Uint8Array,
  bits: number,
): number {
  const shift = (T << k) - T;
  let done = 0;
  for (const pl of planesOf(g)) {
    const xs = pl.xStride;
    const ys = pl.yStride;
    for (let y = 0; y < pl.height; y++) {
      const width = y === pl.height - 1 ? pl.lastRowWidth : pl.width;
      const row = pl.base + y * ys;
      let x = row >= K ? 0 : Math.ceil((K - row) / xs);
      for (let idx = row + x * xs; x < width; x++, idx += xs) {
        let pred: number;
        if (y === 0) pred = x === 0 ? 0 : ctx[idx - xs]!;
        else if (x === 0) pred = ctx[idx - ys]!;
        else {
          const va = ctx[idx - xs]!;
          const vb = ctx[idx - ys]!;
          const vc = ctx[idx - ys - xs]!;
          pred = medInt(va, vb, vc);
        }
        const e = ctx[idx]! - pred;
        if (e >= -T && e < T) {
          const take = Math.min(k, bits - done);
          const at = done >>> 3;
          const window = (payload[at]! << 8) | (payload[at + 1] ?? 0);
          const chunk = (window >>> (16 - (done & 7) - take)) & ((1 << take) - 1);
          done += take;
          marked[idx] = pred + (e << k) + (chunk << (k - take));
        } else marked[idx] = pred + (e >= T ? e + shift : e - shift);
        if (done >= bits) return done;
      }
    }
  }
  return done;
}

/**
 * Planning and embedding for one image (`protect` searches its parameters with it). For samples of
 * up to 16 bits the prediction errors and their histogram come from one pass into scratch memory,
 * the histogram of samples [K, n) is that one less R's errors, and, for images scanned in index
 * order when no value needs clamping, the marked values are written straight into a copy of the
 * pixel bytes by `embedLanes`. Same parameters, payloads and bytes as `predictionErrors`,
 * `errorHistogram`, `preparePayload`, `hide` and `writeValues` (`fastpath.property.test.ts`).
 * Scratch memory: use an instance synchronously, and one at a time.
 */
export class Hider {
  private readonly errors: Errors;
  /** Histogram of every sample's error, at e + HIST_LIMIT (samples of up to 16 bits). */
  private readonly all: Int32Array | undefined;
  private histK = -1;
  private hist: Float64Array | Int32Array | undefined;
  private valueHist: Float64Array | undefined;
  private readonly ranges = new Map<number, { vmin: number; vmax: number }>();

  constructor(
    readonly values: Values,
    readonly g: Geometry,
  ) {
    if (values instanceof Int32Array && g.bitsStored <= 16) {
      this.all = scratchInt32('hider.hist', 2 * HIST_LIMIT + 1).fill(0);
      this.errors = predictionErrorsInt(
        values,
        g,
        scratchInt32('hider.errors', values.length),
        this.all,
      );
    } else this.errors = predictionErrors(values, g);
  }

  /** `errorHistogram(errors, K)`: the histogram of the errors of samples [K, n). */
  histogram(K: number): Float64Array | Int32Array {
    if (K === this.histK && this.hist) return this.hist;
    let hist: Float64Array | Int32Array;
    if (this.all) {
      const h = scratchInt32('hider.histK', this.all.length);
      h.set(this.all);
      for (let i = 0; i < K; i++) h[this.errors[i]! + HIST_LIMIT]!--;
      hist = h;
    } else hist = errorHistogram(this.errors, K);
    this.histK = K;
    return (this.hist = hist);
  }

  /**
   * `estimateMapBits` from the histogram of every sample value, built only when the values span
   * more than the room (0 before, as `estimateMapBits` returns then); 0 for samples of more than 16
   * bits, which have no value histogram.
   */
  mapBits(p: HidingParams): number {
    if (this.g.bitsStored > 16) return 0;
    const { min, max } = valueRange(this.g);
    const M = margin(p);
    const { vmin, vmax } = this.range(0);
    if (vmax - vmin <= max - M - (min + M) - 2) return 0;
    this.valueHist ??= valueHistogram(this.values, this.g, 0);
    return estimateMapBits(this.valueHist!, this.g, p);
  }

  private range(K: number): { vmin: number; vmax: number } {
    let r = this.ranges.get(K);
    if (!r) this.ranges.set(K, (r = rangeOf(this.values, K)));
    return r;
  }

  /** `preparePayload`, without the clamping pass when no value needs clamping. */
  prepare(region: Region, p: HidingParams): Prepared {
    const { min, max } = valueRange(this.g);
    const M = margin(p);
    const lo = min + M;
    const hi = max - M;
    const { vmin, vmax } = this.range(region.K);
    const d = offsetFor(vmin, vmax, lo, hi);
    if (!(region.K < this.values.length && vmin + d > lo && vmax + d < hi))
      return preparePayload(this.values, this.g, region, p);
    const built = payloadOf(this.values, region, d, 0, new Uint8Array(0));
    return { ...built, d, of: { values: this.values, K: region.K, L: region.L, M } };
  }

  /**
   * The pixel bytes `data` with the marked values in their low `bitsStored` bits:
   * `writeValues(data, g, hide(values, g, region, p, prepared).marked)`, or undefined when the image
   * lacks the capacity for these parameters. `prepared` must come from `prepare` of this instance.
   */
  embed(
    data: Uint8Array,
    region: Region,
    p: HidingParams,
    prepared: Prepared,
  ): Uint8Array | undefined {
    const { values, g } = this;
    if (!fitsRange(g, p)) return undefined;
    if (
      prepared.clamped === undefined &&
      prepared.of.values === values &&
      prepared.of.K === region.K &&
      prepared.of.L === region.L &&
      prepared.of.M === margin(p) &&
      values instanceof Int32Array &&
      this.errors instanceof Int32Array &&
      this.all &&
      recoversWords(g, region, p) &&
      sequential(g)
    ) {
      const out = data.slice();
      const lanes = lanesOf(out, g);
      if (lanes) {
        const stop = embedLanes(lanes, values, this.errors, g, region, prepared.d, p, prepared);
        return stop < 0 ? undefined : out;
      }
    }
    const hidden = hide(values, g, region, p, prepared);
    return hidden && writeValues(data, g, hidden.marked);
  }
}

/**
 * `hide` and `writeValues` in one pass for sequential images (`sequential`) whose values need no
 * clamping (`Prepared.d` only): the marked value of each sample goes straight into its lane of the
 * pixel bytes (a copy of them), the bits above `bitsStored` kept. Where a sample's neighbours all
 * lie beyond R, its context error is its prediction error from `predictionErrorsInt` (MED commutes
 * with adding d); next to R and on each plane's first row it is predicted from the context values
 * as `embedWords` does. The samples after the payload's last bit get their value plus d. Returns the
 * end of the samples that carry the payload, or −1 when the payload does not fit.
 */
function embedLanes(
  lanes: Lanes,
  values: Int32Array,
  errors: Int32Array,
  g: Geometry,
  region: Region,
  d: number,
  p: HidingParams,
  prepared: Prepared,
): number {
  const { K, L } = region;
  const { T, k } = p;
  const { payload, bits } = prepared;
  const vMask = (1 << g.bitsStored) - 1;
  const keep = ~vMask;
  const rMask = ~((1 << L) - 1);
  const shift = (T << k) - T;
  // No closures here: a variable a closure changes lives on the heap, and `done` is the hottest.
  let done = 0;
  let stop = -1;
  planes: for (const pl of planesOf(g)) {
    const ys = pl.yStride;
    for (let y = 0; y < pl.height; y++) {
      const width = y === pl.height - 1 ? pl.lastRowWidth : pl.width;
      const row = pl.base + y * ys;
      const x0 = row >= K ? 0 : K - row;
      // Every neighbour beyond R: the context error is the prediction error.
      const inner = y > 0 && row - ys >= K;
      for (let x = x0, idx = row + x0; x < width; x++, idx++) {
        const v = values[idx]! + d;
        let e: number;
        if (inner) e = errors[idx]!;
        else if (y === 0) e = v - (x === 0 ? 0 : context(values, idx - 1, K, rMask, d));
        else if (x === 0) e = v - context(values, idx - ys, K, rMask, d);
        else
          e =
            v -
            medInt(
              context(values, idx - 1, K, rMask, d),
              context(values, idx - ys, K, rMask, d),
              context(values, idx - ys - 1, K, rMask, d),
            );
        let m: number;
        if (e >= -T && e < T) {
          const take = Math.min(k, bits - done);
          const at = done >>> 3;
          const window = (payload[at]! << 8) | (payload[at + 1] ?? 0);
          const chunk = (window >>> (16 - (done & 7) - take)) & ((1 << take) - 1);
          done += take;
          m = v - e + (e << k) + (chunk << (k - take));
        } else m = e >= T ? v + shift : v - shift;
        lanes[idx] = (lanes[idx]! & keep) | (m & vMask);
        if (done >= bits) {
          stop = idx + 1;
          break planes;
        }
      }
    }
  }
  if (stop < 0) return -1;
  for (let i = stop, n = g.count; i < n; i++)
    lanes[i] = (lanes[i]! & keep) | ((values[i]! + d) & vMask);
  return stop;
}

/** The decoder's view of sample j: R's value without its container planes, the others moved by d. */
const context = (values: Int32Array, j: number, K: number, rMask: number, d: number): number =>
  j < K ? values[j]! & rMask : values[j]! + d;

/**
 * The decoder's hot loop (the viewer runs it for every image): restores samples in scan order, in
 * place in `w`, until `payloadBits` bits are out. Written out by hand — MED inline, no callbacks —
 * because it is where opening an image spends its time.
 */
function extractPayload(
  w: Values,
  g: Geometry,
  K: number,
  p: HidingParams,
  payloadBits: number,
): Uint8Array {
  const { T, k } = p;
  const scale = 2 ** k;
  const shift = T * (scale - 1);
  const lowE = -T * scale;
  const highE = T * scale;
  const out = new Uint8Array(Math.ceil((payloadBits + k) / 8));
  let bits = 0;
  if (payloadBits <= 0) return out;
  for (const pl of planesOf(g)) {
    const xs = pl.xStride;
    const ys = pl.yStride;
    for (let y = 0; y < pl.height; y++) {
      const width = y === pl.height - 1 ? pl.lastRowWidth : pl.width;
      const row = pl.base + y * ys;
      for (let x = 0; x < width; x++) {
        const idx = row + x * xs;
        if (idx < K) continue;
        let pred: number;
        if (x === 0) pred = y === 0 ? 0 : w[idx - ys]!;
        else if (y === 0) pred = w[idx - xs]!;
        else {
          const va = w[idx - xs]!;
          const vb = w[idx - ys]!;
          const vc = w[idx - ys - xs]!;
          const mx = va > vb ? va : vb;
          const mn = va > vb ? vb : va;
          pred = vc >= mx ? mn : vc <= mn ? mx : va + vb - vc;
        }
        const e2 = w[idx]! - pred;
        if (e2 >= lowE && e2 < highE) {
          const chunk = ((e2 % scale) + scale) % scale;
          w[idx] = pred + (e2 - chunk) / scale;
          for (let b = k - 1; b >= 0; b--, bits++)
            if ((chunk >> b) & 1) out[bits >>> 3]! |= 0x80 >>> (bits & 7);
          if (bits >= payloadBits) return out;
        } else w[idx] = pred + (e2 >= highE ? e2 - shift : e2 + shift);
      }
    }
  }
  throw new ZtvError('integrity', 'the image ends before its hidden payload does');
}

/** The side information at the head of an extracted payload, read and checked. */
interface Side {
  readonly d: number;
  readonly entries: number;
  /** The inflated location map (undefined when no sample was clamped). */
  readonly lm: BitReader | undefined;
  /** Positioned at R's original low bits. */
  readonly r: BitReader;
}

/** The most bytes one location-map entry takes (a varint: 7 bits a byte, 56 bits at most). */
const LM_ENTRY_BYTES = 8;

/** `samples`: how many samples the image has — the most entries its location map can hold. */
function readSide(payload: Uint8Array, payloadBits: number, samples: number): Side {
  const r = new BitReader(payload, payloadBits);
  if (r.read(8) !== PAYLOAD_VERSION)
    throw new ZtvError('integrity', 'the hidden payload has an unknown version');
  const d = unzigzag(readVarint(r));
  const entries = readVarint(r);
  const lmLength = readVarint(r);
  if (lmLength * 8 > r.remaining)
    throw new ZtvError('integrity', 'the hidden location map is longer than the payload');
  let lm: BitReader | undefined;
  if (entries > samples)
    throw new ZtvError('integrity', 'the location map has more entries than the image has samples');
  if (entries > 0) {
    // Capped: a forged map of a few kilobytes must not inflate to gigabytes before it is refused.
    try {
      lm = new BitReader(
        inflateCapped(r.readBytes(lmLength), entries * LM_ENTRY_BYTES, 'the map', 'integrity'),
      );
    } catch (e) {
      if (e instanceof ZtvError && e.code === 'unsupported')
        throw new ZtvError('integrity', 'the hidden location map inflates beyond its entries');
      throw new ZtvError('integrity', 'the hidden location map does not inflate');
    }
  } else if (lmLength !== 0) throw new ZtvError('integrity', 'an empty location map has content');
  return { d, entries, lm, r };
}

/**
 * Undoes `hide`: returns the original values, R's low bits included. `marked` holds R's samples
 * with whatever the container left in their low bits. Throws an integrity error when the hidden
 * stream is inconsistent (a tampered or wrongly decrypted image). The reference decoder: any
 * geometry and depth (32-bit samples included); `recoverWords` is the fast path for words of 1 or 2
 * bytes and gives the same result.
 */
export function recover(
  marked: Values,
  g: Geometry,
  region: Region,
  p: HidingParams,
  payloadBits: number,
): Values {
  const w = marked.slice() as Values;
  for (let i = 0; i < region.K; i++) w[i] = maskLow(w[i]!, region.L);
  const payload = extractPayload(w, g, region.K, p, payloadBits);
  const { d, entries, lm, r } = readSide(payload, payloadBits, w.length);
  const { min, max } = valueRange(g);
  const M = margin(p);
  const lo = min + M;
  const hi = max - M;
  let seen = 0;
  for (let i = region.K; i < w.length; i++) {
    let v = w[i]!;
    if (lm && (v === lo || v === hi)) {
      if (++seen > entries)
        throw new ZtvError('integrity', 'the location map has fewer entries than clamped samples');
      const dist = readVarint(lm);
      v = v === lo ? lo - dist : hi + dist;
    }
    v -= d;
    if (v < min || v > max) throw new ZtvError('integrity', 'a restored sample is out of range');
    w[i] = v;
  }
  if (seen !== entries)
    throw new ZtvError('integrity', 'the location map has more entries than clamped samples');
  if (r.remaining !== region.K * region.L)
    throw new ZtvError('integrity', "the hidden payload does not end with R's low bits");
  for (let i = 0; i < region.K; i++) w[i] = w[i]! + r.read(region.L);
  return w;
}

/** Whether `recoverWords` handles this image and these parameters (else use `recover`). */
export function recoversWords(g: Geometry, region: Region, p: HidingParams): boolean {
  return (
    (g.wordBytes === 1 || g.wordBytes === 2) &&
    g.bitsStored >= 1 &&
    g.bitsStored <= 8 * g.wordBytes &&
    Number.isInteger(region.L) &&
    region.L >= 1 &&
    region.L <= 8 &&
    Number.isInteger(region.K) &&
    region.K >= 0 &&
    region.K <= g.count &&
    Number.isInteger(p.k) &&
    p.k >= 1 &&
    p.k <= 8 &&
    Number.isInteger(p.T) &&
    p.T >= 0 &&
    p.T <= 0xffff
  );
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** The words as 16-bit lanes when the platform and the alignment allow it (else bytes are used). */
const wordView = (data: Uint8Array, g: Geometry): Uint16Array | undefined =>
  g.wordBytes === 2 && LITTLE_ENDIAN && data.byteOffset % 2 === 0
    ? new Uint16Array(data.buffer, data.byteOffset, g.count)
    : undefined;

/** Sample values [from, to) of 1- or 2-byte words (low `bitsStored` bits, sign-extended if signed). */
function readWords(data: Uint8Array, g: Geometry, out: Int32Array, from: number, to: number): void {
  const bs = g.bitsStored;
  const mask = (1 << bs) - 1;
  const shift = 32 - bs;
  const u16 = wordView(data, g);
  if (u16) {
    if (g.signed) for (let i = from; i < to; i++) out[i] = ((u16[i]! & mask) << shift) >> shift;
    else for (let i = from; i < to; i++) out[i] = u16[i]! & mask;
  } else if (g.wordBytes === 1) {
    if (g.signed) for (let i = from; i < to; i++) out[i] = ((data[i]! & mask) << shift) >> shift;
    else for (let i = from; i < to; i++) out[i] = data[i]! & mask;
  } else if (g.signed) {
    for (let i = from, j = 2 * from; i < to; i++, j += 2)
      out[i] = (((data[j]! | (data[j + 1]! << 8)) & mask) << shift) >> shift;
  } else {
    for (let i = from, j = 2 * from; i < to; i++, j += 2)
      out[i] = (data[j]! | (data[j + 1]! << 8)) & mask;
  }
}

/** Writes values [from, to) into the low `bitsStored` bits of their words, keeping the bits above. */
function putWords(data: Uint8Array, g: Geometry, w: Int32Array, from: number, to: number): void {
  const vMask = (1 << g.bitsStored) - 1;
  const keep = ~vMask;
  const u16 = wordView(data, g);
  if (u16) for (let i = from; i < to; i++) u16[i] = (u16[i]! & keep) | (w[i]! & vMask);
  else if (g.wordBytes === 2)
    for (let i = from, j = 2 * from; i < to; i++, j += 2) {
      const word = ((data[j]! | (data[j + 1]! << 8)) & keep) | (w[i]! & vMask);
      data[j] = word & 0xff;
      data[j + 1] = (word >>> 8) & 0xff;
    }
  else for (let i = from; i < to; i++) data[i] = (data[i]! & keep) | (w[i]! & vMask);
}

/** Collects k-bit chunks (k ≤ 8) most significant bit first. */
class ChunkWriter {
  private acc = 0;
  private held = 0;
  private at = 0;
  /** Bits written so far. */
  bits = 0;
  constructor(readonly out: Uint8Array) {}
  put(chunk: number, k: number): void {
    this.acc = ((this.acc << k) | chunk) & 0xffff;
    this.held += k;
    this.bits += k;
    if (this.held >= 8) {
      this.held -= 8;
      this.out[this.at++] = (this.acc >>> this.held) & 0xff;
    }
  }
  /** Writes the bits still held, left-aligned in their byte; returns the bytes. */
  flush(): Uint8Array {
    if (this.held > 0) this.out[this.at] = (this.acc << (8 - this.held)) & 0xff;
    return this.out;
  }
}

/**
 * The fast decoder's extraction (it mirrors `extractPayload`): 32-bit integer arithmetic only —
 * exact, because `recoversWords` bounds values to 16 bits, T to 16 bits and k to 8, so no
 * intermediate leaves ±2^26 — MED as the median of (a, b, a + b − c) without branches, the first
 * row and column of each plane outside the inner loop, and R's samples skipped by index.
 */
function extractWords(
  w: Int32Array,
  g: Geometry,
  K: number,
  T: number,
  k: number,
  payloadBits: number,
): Uint8Array {
  const lowE = -T << k;
  const highE = T << k;
  const shift = (T << k) - T;
  const low = (1 << k) - 1;
  const out = new ChunkWriter(new Uint8Array(Math.ceil((payloadBits + k) / 8)));
  if (payloadBits <= 0) return out.out;
  /** Restores sample idx from its prediction; true once the payload is complete. */
  const step = (idx: number, pred: number): boolean => {
    const e2 = w[idx]! - pred;
    if (e2 >= lowE && e2 < highE) {
      w[idx] = pred + (e2 >> k);
      out.put(e2 & low, k);
      return out.bits >= payloadBits;
    }
    w[idx] = e2 >= highE ? w[idx]! - shift : w[idx]! + shift;
    return false;
  };
  for (const pl of planesOf(g)) {
    const xs = pl.xStride;
    const ys = pl.yStride;
    for (let y = 0; y < pl.height; y++) {
      const width = y === pl.height - 1 ? pl.lastRowWidth : pl.width;
      const row = pl.base + y * ys;
      let x = row >= K ? 0 : Math.ceil((K - row) / xs);
      if (x >= width) continue;
      let idx = row + x * xs;
      if (y === 0) {
        for (; x < width; x++, idx += xs)
          if (step(idx, x === 0 ? 0 : w[idx - xs]!)) return out.flush();
        continue;
      }
      if (x === 0) {
        if (step(idx, w[idx - ys]!)) return out.flush();
        x++;
        idx += xs;
      }
      for (; x < width; x++, idx += xs) {
        const va = w[idx - xs]!;
        const vb = w[idx - ys]!;
        const vc = w[idx - ys - xs]!;
        const pred = medInt(va, vb, vc);
        const e2 = w[idx]! - pred;
        if (e2 >= lowE && e2 < highE) {
          w[idx] = pred + (e2 >> k);
          out.put(e2 & low, k);
          if (out.bits >= payloadBits) return out.flush();
        } else w[idx] = e2 >= highE ? w[idx]! - shift : w[idx]! + shift;
      }
    }
  }
  throw new ZtvError('integrity', 'the image ends before its hidden payload does');
}

/**
 * Values [K, n) restored into the bytes: clamped values (at lo or hi, when there is a location map)
 * take back their distance, then all lose d, each range-checked — in scan order, as `recover` does,
 * so the same tampering raises the same error. Returns how many map entries were used.
 */
function finishWords(
  data: Uint8Array,
  g: Geometry,
  w: Int32Array,
  K: number,
  side: Side,
  lo: number,
  hi: number,
): number {
  const { d, lm, entries } = side;
  const { min, max } = valueRange(g);
  const n = g.count;
  const u16 = wordView(data, g);
  if (lm === undefined && u16) {
    // v − d is in [min, max] exactly when v is in [min + d, max + d] (|d| is small when it is).
    const vlo = min + d;
    const vhi = max + d;
    const vMask = (1 << g.bitsStored) - 1;
    const keep = ~vMask;
    for (let i = K; i < n; i++) {
      const v = w[i]!;
      if (v < vlo || v > vhi) throw new ZtvError('integrity', 'a restored sample is out of range');
      u16[i] = (u16[i]! & keep) | ((v - d) & vMask);
    }
    return 0;
  }
  let seen = 0;
  for (let i = K; i < n; i++) {
    let v = w[i]!;
    if (lm !== undefined && (v === lo || v === hi)) {
      if (++seen > entries)
        throw new ZtvError('integrity', 'the location map has fewer entries than clamped samples');
      const dist = readVarint(lm);
      v = v === lo ? lo - dist : hi + dist;
    }
    v -= d;
    if (v < min || v > max) throw new ZtvError('integrity', 'a restored sample is out of range');
    w[i] = v;
  }
  putWords(data, g, w, K, n);
  return seen;
}

/** Words as lanes of their own width: the bytes, or 16-bit lanes when little endian and aligned. */
type Lanes = Uint8Array | Uint16Array;

const lanesOf = (data: Uint8Array, g: Geometry): Lanes | undefined =>
  g.wordBytes === 1 ? data.subarray(0, g.count) : wordView(data, g);

/**
 * Whether scan order is index order — every plane contiguous, one after the other (grey images of
 * any number of frames, colour by plane, packed 1-bit data) — so that extraction visits exactly the
 * samples [K, stop).
 */
function sequential(g: Geometry): boolean {
  let next = 0;
  for (const pl of planesOf(g)) {
    if (pl.xStride !== 1 || pl.yStride !== pl.width || pl.base !== next) return false;
    next += (pl.height - 1) * pl.width + pl.lastRowWidth;
  }
  return next === g.count;
}

/**
 * `extractWords` for sequential images, reading each sample's marked value from its lane as it
 * comes (sign-extended by `sh`) instead of from a first pass over the whole image: only R has to be
 * in `w` beforehand. Returns the payload and `stop`, the end of the samples restored in `w`.
 */
function extractLanes(
  lanes: Lanes,
  sh: number,
  w: Int32Array,
  g: Geometry,
  K: number,
  T: number,
  k: number,
  payloadBits: number,
): { readonly payload: Uint8Array; readonly stop: number } {
  const mask = (1 << g.bitsStored) - 1;
  const lowE = -T << k;
  const highE = T << k;
  const shift = (T << k) - T;
  const low = (1 << k) - 1;
  const out = new ChunkWriter(new Uint8Array(Math.ceil((payloadBits + k) / 8)));
  if (payloadBits <= 0) return { payload: out.out, stop: K };
  /** Restores sample idx from its prediction; true once the payload is complete. */
  const step = (idx: number, pred: number): boolean => {
    const v = ((lanes[idx]! & mask) << sh) >> sh;
    const e2 = v - pred;
    if (e2 >= lowE && e2 < highE) {
      w[idx] = pred + (e2 >> k);
      out.put(e2 & low, k);
      return out.bits >= payloadBits;
    }
    w[idx] = e2 >= highE ? v - shift : v + shift;
    return false;
  };
  for (const pl of planesOf(g)) {
    const ys = pl.yStride;
    for (let y = 0; y < pl.height; y++) {
      const width = y === pl.height - 1 ? pl.lastRowWidth : pl.width;
      const row = pl.base + y * ys;
      let x = row >= K ? 0 : K - row;
      if (x >= width) continue;
      let idx = row + x;
      if (y === 0) {
        for (; x < width; x++, idx++)
          if (step(idx, x === 0 ? 0 : w[idx - 1]!)) return { payload: out.flush(), stop: idx + 1 };
        continue;
      }
      if (x === 0) {
        if (step(idx, w[idx - ys]!)) return { payload: out.flush(), stop: idx + 1 };
        x++;
        idx++;
      }
      for (; x < width; x++, idx++) {
        const va = w[idx - 1]!;
        const vb = w[idx - ys]!;
        const vc = w[idx - ys - 1]!;
        const pred = medInt(va, vb, vc);
        const v = ((lanes[idx]! & mask) << sh) >> sh;
        const e2 = v - pred;
        if (e2 >= lowE && e2 < highE) {
          w[idx] = pred + (e2 >> k);
          out.put(e2 & low, k);
          if (out.bits >= payloadBits) return { payload: out.flush(), stop: idx + 1 };
        } else w[idx] = e2 >= highE ? v - shift : v + shift;
      }
    }
  }
  throw new ZtvError('integrity', 'the image ends before its hidden payload does');
}

/**
 * `finishWords` for sequential images without a location map: [K, stop) from `w`, the untouched
 * rest straight from the lanes, each less d and range-checked in index (= scan) order.
 */
function finishLanes(
  lanes: Lanes,
  sh: number,
  w: Int32Array,
  g: Geometry,
  K: number,
  stop: number,
  d: number,
): void {
  const { min, max } = valueRange(g);
  const vlo = min + d;
  const vhi = max + d;
  const vMask = (1 << g.bitsStored) - 1;
  const keep = ~vMask;
  for (let i = K; i < stop; i++) {
    const v = w[i]!;
    if (v < vlo || v > vhi) throw new ZtvError('integrity', 'a restored sample is out of range');
    lanes[i] = (lanes[i]! & keep) | ((v - d) & vMask);
  }
  const n = g.count;
  for (let i = stop; i < n; i++) {
    const word = lanes[i]!;
    const v = ((word & vMask) << sh) >> sh;
    if (v < vlo || v > vhi) throw new ZtvError('integrity', 'a restored sample is out of range');
    lanes[i] = (word & keep) | ((v - d) & vMask);
  }
}

/**
 * `recover` for words of 1 or 2 bytes (`recoversWords`), straight on the decrypted bytes: reads the
 * values, undoes the hiding, and writes the original low `bitsStored` bits back into `data` in place
 * (the bits above them untouched), returning `data`. Same result and same errors as
 * `writeValues(data, g, recover(readValues(data, g), …))`; `data` is left partly written when it
 * throws. Values live in a scratch array reused between calls (nothing here awaits).
 */
export function recoverWords(
  data: Uint8Array,
  g: Geometry,
  region: Region,
  p: HidingParams,
  payloadBits: number,
): Uint8Array {
  if (!recoversWords(g, region, p))
    throw new ZtvError('bad-input', 'recoverWords does not handle this image or these parameters');
  const n = g.count;
  if (data.length < n * g.wordBytes) throw new ZtvError('bad-input', 'the pixel data is too short');
  const w = scratchInt32('recover', n);
  const { K, L } = region;
  const M = margin(p);
  const { min, max } = valueRange(g);
  const rMask = ~((1 << L) - 1);
  const lanes = lanesOf(data, g);
  let payload: Uint8Array;
  let side: Side;
  let seen: number;
  if (lanes && sequential(g)) {
    // One pass fewer: R read first, every other sample read where extraction or finishing needs it.
    const sh = g.signed ? 32 - g.bitsStored : 0;
    readWords(data, g, w, 0, K);
    for (let i = 0; i < K; i++) w[i] = w[i]! & rMask;
    const extracted = extractLanes(lanes, sh, w, g, K, p.T, p.k, payloadBits);
    payload = extracted.payload;
    side = readSide(payload, payloadBits, n);
    if (side.lm === undefined) {
      finishLanes(lanes, sh, w, g, K, extracted.stop, side.d);
      seen = 0;
    } else {
      readWords(data, g, w, extracted.stop, n);
      seen = finishWords(data, g, w, K, side, min + M, max - M);
    }
  } else {
    readWords(data, g, w, 0, n);
    for (let i = 0; i < K; i++) w[i] = w[i]! & rMask;
    payload = extractWords(w, g, K, p.T, p.k, payloadBits);
    side = readSide(payload, payloadBits, n);
    seen = finishWords(data, g, w, K, side, min + M, max - M);
  }
  if (seen !== side.entries)
    throw new ZtvError('integrity', 'the location map has more entries than clamped samples');
  if (side.r.remaining !== K * L)
    throw new ZtvError('integrity', "the hidden payload does not end with R's low bits");
  // R's original low bits, L per sample, most significant first, straight from the payload.
  let pos = side.r.offset;
  for (let i = 0; i < K; i++) {
    let bits = 0;
    for (let b = 0; b < L; b++, pos++)
      bits = (bits << 1) | ((payload[pos >>> 3]! >>> (7 - (pos & 7))) & 1);
    w[i] = w[i]! + bits;
  }
  putWords(data, g, w, 0, K);
  return data;
}
