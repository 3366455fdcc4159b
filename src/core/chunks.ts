/**
 * Bytes arriving in chunks (a fetch body, a request stream), taken out by exact lengths: what the
 * session frames and the multipart parts are read with. Each byte is copied once at most, into the
 * buffer that keeps it (concatenating chunk by chunk would copy a 500 kB instance a dozen times).
 */
export class ChunkQueue {
  /** The chunks; those before `first` are read and dropped (cleared in place, compacted now and then). */
  private chunks: Uint8Array[] = [];
  private first = 0;
  private head = 0;
  length = 0;

  push(c: Uint8Array): void {
    if (c.length === 0) return;
    this.chunks.push(c);
    this.length += c.length;
  }

  /**
   * The next `n` bytes (n ≤ length), removed from the queue: a view when they lie in one chunk (the
   * chunks are never written to), otherwise a copy.
   */
  take(n: number): Uint8Array {
    const first = this.chunks[this.first];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.skip(first, n);
      return out;
    }
    const out = new Uint8Array(n);
    for (let off = 0; off < n;) {
      const c = this.chunks[this.first]!;
      const k = Math.min(c.length - this.head, n - off);
      out.set(c.subarray(this.head, this.head + k), off);
      off += k;
      this.skip(c, k);
    }
    return out;
  }

  /**
   * Moves past `k` bytes of the front chunk `c`, dropping it once read to its end: by moving the
   * front index, not by `shift()`, which copies the array (a body of 200,000 one-byte chunks took
   * minutes to take out); the read part is cut off once it is half the array.
   */
  private skip(c: Uint8Array, k: number): void {
    this.head += k;
    this.length -= k;
    if (this.head === c.length) {
      this.first++;
      this.head = 0;
      if (this.first === this.chunks.length) {
        this.chunks = [];
        this.first = 0;
      } else if (this.first >= 1024 && this.first * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.first);
        this.first = 0;
      }
    }
  }

  /** The byte at `i` from the front (i < length). */
  at(i: number): number {
    let k = this.head + i;
    for (let ci = this.first; ci < this.chunks.length; ci++) {
      const c = this.chunks[ci]!;
      if (k < c.length) return c[k]!;
      k -= c.length;
    }
    return -1;
  }

  /**
   * Where `needle` next starts at or after `from`, across chunk edges; -1 when not there yet. Jumps
   * from one occurrence of its first byte to the next, so a long body is scanned at native speed;
   * starts at the chunk holding `from`, found from the back, so that a reader searching again after
   * each new chunk does work in proportion to the new bytes, not to the chunks queued (a body
   * trickled in one-byte chunks made the search quadratic: seconds for a few kilobytes).
   */
  indexOf(needle: Uint8Array, from = 0): number {
    const n = needle.length;
    if (n === 0) return Math.min(from, this.length);
    // The first chunk to search and the position of its first unread byte.
    let ci = this.chunks.length - 1;
    let base = this.length;
    for (; ci >= this.first; ci--) {
      base -= this.chunks[ci]!.length - (ci === this.first ? this.head : 0);
      if (base <= from) break;
    }
    if (ci < this.first) return -1;
    for (; ci < this.chunks.length; ci++) {
      const c = this.chunks[ci]!;
      const start = ci === this.first ? this.head : 0;
      for (let j = c.indexOf(needle[0]!, start + Math.max(from - base, 0)); j >= 0;) {
        const pos = base + j - start;
        if (pos + n > this.length) return -1;
        if (this.matchesAt(needle, ci, j)) return pos;
        j = c.indexOf(needle[0]!, j + 1);
      }
      base += c.length - start;
    }
    return -1;
  }

  private matchesAt(needle: Uint8Array, ci: number, j: number): boolean {
    let c = this.chunks[ci]!;
    for (let t = 0; t < needle.length; t++, j++) {
      while (j >= c.length) {
        c = this.chunks[++ci]!;
        j = 0;
      }
      if (c[j] !== needle[t]) return false;
    }
    return true;
  }
}
