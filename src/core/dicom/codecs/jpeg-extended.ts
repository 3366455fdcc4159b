/**
 * JPEG sequential DCT decoding with Huffman coding (ISO 10918-1 processes 1, 2 and 4: baseline and
 * extended, 8- or 12-bit samples), for DICOM's 1.2.840.10008.1.2.4.50/.51 frames of more than 8 bits
 * allocated, and for RGB frames coded without a colour transform (libjpeg-turbo's WebAssembly build
 * offers no way to turn off its YCbCr guess). libjpeg-turbo decodes the other 8-bit frames; the web
 * has no maintained 12-bit build, and the 12-bit decoder shipped inside @cornerstonejs/dicom-image-loader (pdf.js's
 * jpg.js) adds about +15 to every sample: its output stage scales the 8-bit level shift by the
 * sample range instead of shifting by 2^(P-1) (docs/protection.md, "Codecs").
 *
 * The arithmetic is that of the IJG library (libjpeg 6b, which DCMTK and GDCM embed) so that the
 * result equals theirs bit for bit: `jidctint.c`'s accurate integer IDCT with CONST_BITS 13 and
 * PASS1_BITS 1 for 12-bit samples, computed in exact double arithmetic (the C code uses 64-bit
 * `long` on the platforms the references run on), coefficients held as 16-bit `JCOEF`, the IDCT
 * workspace as 32-bit `int`, and `jdmaster.c`'s post-IDCT range limit (level shift by 2^(P-1), then
 * clamping, with its wrap-around for wildly out-of-range values).
 */
import { ZtvError } from '../../errors.ts';

export interface JpegFrame {
  readonly width: number;
  readonly height: number;
  /** Sample precision, 8 or 12 bits. */
  readonly precision: number;
  /** 1 or 3. */
  readonly components: number;
  /** Row-major samples, colour-by-pixel. */
  readonly samples: Uint16Array;
  /** Something libjpeg would have warned about (corrupt or truncated entropy data), in words. */
  readonly warning?: string;
}

/** Natural order of the zig-zag sequence (ISO 10918-1 Figure A.6). */
const ZIGZAG = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
  13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52,
  45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

const fail = (why: string): never => {
  throw new ZtvError('not-dicom', `JPEG could not decode a frame: ${why}`);
};

interface Huffman {
  readonly maxcode: Int32Array; // by code length 1..16; -1 when no code of that length
  readonly valptr: Int32Array;
  readonly mincode: Int32Array;
  readonly values: Uint8Array;
}

/** The decoding tables of ISO 10918-1 F.2.2.3 (MAXCODE, MINCODE, VALPTR). */
function huffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const mincode = new Int32Array(17);
  const valptr = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let l = 1; l <= 16; l++) {
    const n = counts[l - 1]!;
    if (n > 0) {
      valptr[l] = k;
      mincode[l] = code;
      code += n;
      k += n;
      maxcode[l] = code - 1;
    }
    if (code > 1 << l) fail('a Huffman table is over-subscribed');
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { maxcode, valptr, mincode, values };
}

/** Entropy-coded data, bit by bit, with byte stuffing and markers as libjpeg reads them. */
class Bits {
  private acc = 0;
  private left = 0;
  /** Set once a marker was met where data was expected: zeros are read from then on. */
  hitMarker = false;
  constructor(
    private readonly d: Uint8Array,
    public pos: number,
  ) {}
  private fill(): void {
    let b = 0;
    if (!this.hitMarker && this.pos < this.d.length) {
      b = this.d[this.pos]!;
      if (b === 0xff) {
        const next = this.d[this.pos + 1];
        if (next === 0x00) this.pos += 2;
        else {
          this.hitMarker = true;
          b = 0;
        }
      } else this.pos++;
    } else this.hitMarker = true;
    this.acc = ((this.acc << 8) | b) & 0xffffff;
    this.left += 8;
  }
  bit(): number {
    if (this.left === 0) this.fill();
    this.left--;
    return (this.acc >> this.left) & 1;
  }
  receive(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 1) | this.bit();
    return v;
  }
  decode(h: Huffman): number {
    let code = this.bit();
    let l = 1;
    while (code > h.maxcode[l]!) {
      code = (code << 1) | this.bit();
      if (++l > 16) return 0; // corrupt data: libjpeg warns and takes 0
    }
    return h.values[h.valptr[l]! + code - h.mincode[l]!] ?? 0;
  }
  /** Drops the bits left in the current byte (before a restart marker). */
  align(): void {
    this.left = 0;
    this.acc = 0;
  }
}

/** ISO 10918-1 F.2.2.1 EXTEND. */
const extend = (v: number, t: number): number => (t > 0 && v < 1 << (t - 1) ? v - (1 << t) + 1 : v);

// jidctint.c constants, CONST_BITS = 13.
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;
const CONST_BITS = 13;

/** DESCALE of jdct.h: a rounding arithmetic right shift, exact on doubles of any size. */
const descale = (x: number, n: number): number => Math.floor((x + 2 ** (n - 1)) / 2 ** n);

/**
 * The 1-D pass of jpeg_idct_islow on `v[0..7]`, before descaling: `r[k]` is output k times
 * 2^CONST_BITS (times the pass's own scale). Both passes of jidctint.c are this computation.
 */
function idct1d(v: Float64Array, r: Float64Array): void {
  let z2 = v[2]!;
  let z3 = v[6]!;
  let z1 = (z2 + z3) * FIX_0_541196100;
  let tmp2 = z1 + z3 * -FIX_1_847759065;
  let tmp3 = z1 + z2 * FIX_0_765366865;
  let tmp0 = (v[0]! + v[4]!) * 2 ** CONST_BITS;
  let tmp1 = (v[0]! - v[4]!) * 2 ** CONST_BITS;
  const tmp10 = tmp0 + tmp3;
  const tmp13 = tmp0 - tmp3;
  const tmp11 = tmp1 + tmp2;
  const tmp12 = tmp1 - tmp2;
  tmp0 = v[7]!;
  tmp1 = v[5]!;
  tmp2 = v[3]!;
  tmp3 = v[1]!;
  z1 = tmp0 + tmp3;
  z2 = tmp1 + tmp2;
  z3 = tmp0 + tmp2;
  let z4 = tmp1 + tmp3;
  const z5 = (z3 + z4) * FIX_1_175875602;
  tmp0 *= FIX_0_298631336;
  tmp1 *= FIX_2_053119869;
  tmp2 *= FIX_3_072711026;
  tmp3 *= FIX_1_501321110;
  z1 *= -FIX_0_899976223;
  z2 *= -FIX_2_562915447;
  z3 *= -FIX_1_961570560;
  z4 *= -FIX_0_390180644;
  z3 += z5;
  z4 += z5;
  tmp0 += z1 + z3;
  tmp1 += z2 + z4;
  tmp2 += z2 + z3;
  tmp3 += z1 + z4;
  r[0] = tmp10 + tmp3;
  r[7] = tmp10 - tmp3;
  r[1] = tmp11 + tmp2;
  r[6] = tmp11 - tmp2;
  r[2] = tmp12 + tmp1;
  r[5] = tmp12 - tmp1;
  r[3] = tmp13 + tmp0;
  r[4] = tmp13 - tmp0;
}

const vin = new Float64Array(8);
const vout = new Float64Array(8);

/**
 * jpeg_idct_islow on one dequantized block (natural order) into `out` at `at`, rows `stride` apart:
 * columns into the 32-bit workspace `ws` (scaled by 2^PASS1_BITS), then rows into samples.
 */
function idctIslow(
  c: Float64Array,
  ws: Int32Array,
  out: Uint16Array,
  at: number,
  stride: number,
  precision: number,
): void {
  const pass1 = precision === 8 ? 2 : 1;
  const max = (1 << precision) - 1;
  const center = 1 << (precision - 1);
  const mask = 4 * (max + 1) - 1;
  const limit = (x: number): number => {
    let i = (x | 0) & mask; // (int) cast, then RANGE_MASK
    if (i >= 2 * (max + 1)) i -= 4 * (max + 1);
    const v = i + center;
    return v < 0 ? 0 : v > max ? max : v;
  };
  for (let col = 0; col < 8; col++) {
    let acZero = true;
    for (let k = 1; k < 8; k++) if (c[k * 8 + col] !== 0) acZero = false;
    if (acZero) {
      const dc = c[col]! * 2 ** pass1;
      for (let r = 0; r < 8; r++) ws[r * 8 + col] = dc;
      continue;
    }
    for (let k = 0; k < 8; k++) vin[k] = c[k * 8 + col]!;
    idct1d(vin, vout);
    for (let k = 0; k < 8; k++) ws[k * 8 + col] = descale(vout[k]!, CONST_BITS - pass1);
  }
  for (let row = 0; row < 8; row++) {
    const w = row * 8;
    const o = at + row * stride;
    let acZero = true;
    for (let k = 1; k < 8; k++) if (ws[w + k] !== 0) acZero = false;
    if (acZero) {
      const v = limit(descale(ws[w]!, pass1 + 3));
      for (let k = 0; k < 8; k++) out[o + k] = v;
      continue;
    }
    for (let k = 0; k < 8; k++) vin[k] = ws[w + k]!;
    idct1d(vin, vout);
    for (let k = 0; k < 8; k++) out[o + k] = limit(descale(vout[k]!, CONST_BITS + pass1 + 3));
  }
}

interface Component {
  readonly id: number;
  readonly h: number;
  readonly v: number;
  readonly tq: number;
  /** Blocks per line and per column of the coefficient grid (whole MCUs). */
  readonly bw: number;
  readonly bh: number;
  /** Blocks that hold image samples (a non-interleaved scan codes only these). */
  readonly usedW: number;
  readonly usedH: number;
  readonly coefs: Int16Array; // natural order, JCOEF
  pred: number;
}

/** Skips fill bytes and reads the marker at `pos`; returns [marker, position after it]. */
function nextMarker(d: Uint8Array, pos: number): [number, number] | undefined {
  while (pos < d.length && d[pos] !== 0xff) pos++;
  while (pos < d.length && d[pos] === 0xff) pos++;
  return pos < d.length ? [d[pos]!, pos + 1] : undefined;
}

/**
 * Decodes one JPEG (SOF0 or SOF1, Huffman, 8 or 12 bits) into its samples, colour-by-pixel, without
 * any colour conversion: callers use it where the data's colour space is the one DICOM states
 * (greyscale, or RGB coded without a transform). Every component must have the same sampling factors:
 * this module does not upsample.
 */
export function decodeJpeg(d: Uint8Array): JpegFrame {
  if (d[0] !== 0xff || d[1] !== 0xd8) fail('no start-of-image marker');
  const qt: (Uint16Array | undefined)[] = [];
  const dc: (Huffman | undefined)[] = [];
  const ac: (Huffman | undefined)[] = [];
  let restart = 0;
  let frame: { precision: number; width: number; height: number } | undefined;
  let comps: Component[] = [];
  let mcusX = 0;
  let mcusY = 0;
  let warning: string | undefined;
  let pos = 2;
  const u16 = (o: number): number => (d[o]! << 8) | d[o + 1]!;
  for (;;) {
    const next = nextMarker(d, pos);
    if (!next) {
      warning ??= 'the JPEG stream ends without an end-of-image marker';
      break;
    }
    const [m, at] = next;
    pos = at;
    if (m === 0xd9) break; // EOI
    if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01) continue;
    if (pos + 2 > d.length) fail('a marker segment is truncated');
    const len = u16(pos);
    const seg = pos + 2;
    const end = pos + len;
    if (len < 2 || end > d.length) fail('a marker segment is truncated');
    switch (m) {
      case 0xdb: {
        // DQT
        for (let o = seg; o < end;) {
          const pq = d[o]! >> 4;
          const id = d[o]! & 15;
          o++;
          const t = new Uint16Array(64);
          for (let k = 0; k < 64; k++) {
            t[ZIGZAG[k]!] = pq ? u16(o) : d[o]!;
            o += pq ? 2 : 1;
          }
          if (o > end) fail('a quantization table is truncated');
          qt[id & 3] = t;
        }
        break;
      }
      case 0xc4: {
        // DHT
        for (let o = seg; o < end;) {
          const tc = d[o]! >> 4;
          const th = d[o]! & 15;
          const counts = d.subarray(o + 1, o + 17);
          let n = 0;
          for (const c of counts) n += c;
          const values = d.slice(o + 17, o + 17 + n);
          o += 17 + n;
          if (o > end || n > 256) fail('a Huffman table is truncated');
          (tc === 0 ? dc : ac)[th & 3] = huffman(counts, values);
        }
        break;
      }
      case 0xdd:
        restart = u16(seg);
        break;
      case 0xc0:
      case 0xc1: {
        if (frame) fail('more than one frame header');
        const precision = d[seg]!;
        const height = u16(seg + 1);
        const width = u16(seg + 3);
        const nf = d[seg + 5]!;
        if (precision !== 8 && precision !== 12) fail(`sample precision ${precision}`);
        if (width === 0 || height === 0) fail('the frame has no lines (DNL is not supported)');
        if (nf !== 1 && nf !== 3) fail(`${nf} components`);
        const spec = Array.from({ length: nf }, (_, i) => ({
          id: d[seg + 6 + 3 * i]!,
          h: d[seg + 7 + 3 * i]! >> 4,
          v: d[seg + 7 + 3 * i]! & 15,
          tq: d[seg + 8 + 3 * i]! & 3,
        }));
        if (spec.some((c) => c.h !== spec[0]!.h || c.v !== spec[0]!.v || c.h < 1 || c.v < 1))
          throw new ZtvError(
            'unsupported',
            'JPEG frames whose components are subsampled are not supported by this decoder',
          );
        const hmax = spec[0]!.h;
        const vmax = spec[0]!.v;
        mcusX = Math.ceil(width / (8 * hmax));
        mcusY = Math.ceil(height / (8 * vmax));
        comps = spec.map((c) => {
          const bw = mcusX * c.h;
          const bh = mcusY * c.v;
          return {
            ...c,
            bw,
            bh,
            usedW: Math.ceil(Math.ceil((width * c.h) / hmax) / 8),
            usedH: Math.ceil(Math.ceil((height * c.v) / vmax) / 8),
            coefs: new Int16Array(bw * bh * 64),
            pred: 0,
          };
        });
        frame = { precision, width, height };
        break;
      }
      case 0xc2:
      case 0xc3:
      case 0xc5:
      case 0xc6:
      case 0xc7:
      case 0xc9:
      case 0xca:
      case 0xcb:
      case 0xcd:
      case 0xce:
      case 0xcf:
        throw new ZtvError(
          'unsupported',
          `JPEG process SOF${m - 0xc0} is not supported here (sequential Huffman DCT only)`,
        );
      case 0xda: {
        if (!frame) fail('a scan before the frame header');
        const ns = d[seg]!;
        const inScan = Array.from({ length: ns }, (_, i) => {
          const c = comps.find((x) => x.id === d[seg + 1 + 2 * i]);
          const t = d[seg + 2 + 2 * i]!;
          const hd = dc[(t >> 4) & 3];
          const ha = ac[t & 3];
          if (!c || !hd || !ha) fail('a scan names a missing component or Huffman table');
          return { c: c!, hd: hd!, ha: ha! };
        });
        const bits = new Bits(d, end);
        for (const s of inScan) s.c.pred = 0;
        // Non-interleaved: one component, its own blocks in raster order. Interleaved: MCUs of
        // h x v blocks of each component in turn.
        const single = ns === 1;
        const units = single ? inScan[0]!.c.usedW * inScan[0]!.c.usedH : mcusX * mcusY;
        const block = (s: (typeof inScan)[number], bx: number, by: number): void => {
          const base = (by * s.c.bw + bx) * 64;
          const coefs = s.c.coefs;
          const t = bits.decode(s.hd);
          s.c.pred += t ? extend(bits.receive(t), t) : 0;
          coefs[base] = s.c.pred;
          for (let k = 1; k < 64;) {
            const rs = bits.decode(s.ha);
            const r = rs >> 4;
            const z = rs & 15;
            if (z) {
              k += r;
              if (k > 63) break;
              coefs[base + ZIGZAG[k]!] = extend(bits.receive(z), z);
              k++;
            } else if (r === 15) k += 16;
            else break;
          }
        };
        for (let u = 0; u < units; u++) {
          if (restart > 0 && u > 0 && u % restart === 0) {
            // Restart: realign on the RSTn marker, reset the DC predictions.
            bits.align();
            const rst = nextMarker(d, bits.pos);
            if (rst && rst[0] >= 0xd0 && rst[0] <= 0xd7) bits.pos = rst[1];
            else warning ??= 'a restart marker is missing';
            bits.hitMarker = false;
            for (const s of inScan) s.c.pred = 0;
          }
          if (single) {
            const s = inScan[0]!;
            block(s, u % s.c.usedW, Math.floor(u / s.c.usedW));
          } else {
            const mx = u % mcusX;
            const my = Math.floor(u / mcusX);
            for (const s of inScan)
              for (let y = 0; y < s.c.v; y++)
                for (let x = 0; x < s.c.h; x++) block(s, mx * s.c.h + x, my * s.c.v + y);
          }
        }
        if (bits.hitMarker)
          warning ??= 'the entropy-coded data ends early (read as zeros, as libjpeg does)';
        pos = bits.pos;
        continue;
      }
      default:
        break; // APPn, COM, DNL…: skipped
    }
    pos = end;
  }
  if (!frame) fail('no frame header');
  const { width, height, precision } = frame!;
  const nc = comps.length;
  const samples = new Uint16Array(width * height * nc);
  const block = new Float64Array(64);
  const ws = new Int32Array(64);
  comps.forEach((c, ci) => {
    const q = qt[c.tq];
    if (!q) fail('a component names a missing quantization table');
    const stride = c.bw * 8;
    const plane = new Uint16Array(stride * c.bh * 8);
    for (let by = 0; by < c.bh; by++)
      for (let bx = 0; bx < c.bw; bx++) {
        const base = (by * c.bw + bx) * 64;
        for (let i = 0; i < 64; i++) block[i] = c.coefs[base + i]! * q![i]!;
        idctIslow(block, ws, plane, by * 8 * stride + bx * 8, stride, precision);
      }
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) samples[(y * width + x) * nc + ci] = plane[y * stride + x]!;
  });
  return {
    width,
    height,
    precision,
    components: nc,
    samples,
    ...(warning ? { warning } : {}),
  };
}
