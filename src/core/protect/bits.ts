/** Bit streams (most significant bit first) and LEB128 varints, for payloads and containers. */
import { ZtvError } from '../errors.ts';

export class BitWriter {
  private buf: Uint8Array;
  /** Number of bits written so far. */
  length = 0;
  constructor(capacityBits = 1024) {
    this.buf = new Uint8Array(Math.max(1, Math.ceil(capacityBits / 8)));
  }
  private grow(bits: number): void {
    const need = Math.ceil((this.length + bits) / 8);
    if (need <= this.buf.length) return;
    const next = new Uint8Array(Math.max(need, this.buf.length * 2));
    next.set(this.buf);
    this.buf = next;
  }
  /** Appends the low `n` bits of `v` (n ≤ 32), most significant first. */
  write(v: number, n: number): void {
    this.grow(n);
    // For an integer, bit i of v is bit i of v mod 2^32: shifts, not a division per bit.
    const int = Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER;
    const u = int ? v >>> 0 : 0;
    for (let i = n - 1; i >= 0; i--) {
      const bit = int && i < 32 ? (u >>> i) & 1 : Math.floor(v / 2 ** i) & 1;
      if (bit) this.buf[this.length >>> 3]! |= 0x80 >>> (this.length & 7);
      this.length++;
    }
  }
  writeBytes(b: Uint8Array): void {
    if ((this.length & 7) === 0) {
      this.grow(b.length * 8);
      this.buf.set(b, this.length >>> 3);
      this.length += b.length * 8;
      return;
    }
    for (const x of b) this.write(x, 8);
  }
  /** The bits written, padded with zeros to whole bytes. */
  bytes(): Uint8Array {
    return this.buf.slice(0, Math.ceil(this.length / 8));
  }
}

export class BitReader {
  private pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly limitBits = buf.length * 8,
  ) {}
  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.limitBits - this.pos;
  }
  read(n: number): number {
    if (this.pos + n > this.limitBits)
      throw new ZtvError('integrity', 'a hidden bit stream ends before its announced content');
    let v = 0;
    for (let i = 0; i < n; i++) {
      const bit = (this.buf[this.pos >>> 3]! >>> (7 - (this.pos & 7))) & 1;
      v = v * 2 + bit;
      this.pos++;
    }
    return v;
  }
  readBytes(n: number): Uint8Array {
    if ((this.pos & 7) === 0) {
      if (this.pos + n * 8 > this.limitBits)
        throw new ZtvError('integrity', 'a hidden bit stream ends before its announced content');
      const out = this.buf.slice(this.pos >>> 3, (this.pos >>> 3) + n);
      this.pos += n * 8;
      return out;
    }
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.read(8);
    return out;
  }
}

/** Unsigned LEB128 of a non-negative safe integer. */
export function writeVarint(w: BitWriter, v: number): void {
  let x = v;
  do {
    const byte = x % 128;
    x = Math.floor(x / 128);
    w.write(x > 0 ? byte | 0x80 : byte, 8);
  } while (x > 0);
}

export function readVarint(r: BitReader): number {
  let v = 0;
  for (let shift = 0; shift < 56; shift += 7) {
    const byte = r.read(8);
    v += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return v;
  }
  throw new ZtvError('integrity', 'a varint in a hidden bit stream is too long');
}
