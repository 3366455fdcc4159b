/**
 * What the seal binds: digests of the original pixels and header, of the protected header, of the
 * ciphertext (as a hash over per-tile hashes, whose truncated tags localize tampering without any
 * key), and a commitment to the image key. Every digest is domain-separated by its label.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, u32be } from '../bytes.ts';
import { taggedHash } from '../crypto/hash.ts';
import { DataSet } from '../dicom/dataset.ts';
import type { PixelInfo } from '../dicom/pixels.ts';
import { T } from '../dicom/tags.ts';
import { writeDataSet } from '../dicom/write.ts';
import { TILE_TAG_LENGTH } from './container.ts';
import { forEachTileSegment, tileAt, type Geometry, type TileGrid } from './geometry.ts';

const PIXEL_TAGS = new Set<number>([T.PixelData, T.FloatPixelData, T.DoubleFloatPixelData]);

/** The data set without pixel data, File Meta or trailing padding, in canonical encoding. */
export function canonicalHeader(ds: DataSet): Uint8Array {
  const out = new DataSet();
  for (const el of ds.elements()) {
    if (PIXEL_TAGS.has(el.tag) || el.tag >>> 16 === 0x0002 || el.tag === T.DataSetTrailingPadding)
      continue;
    out.set(el);
  }
  return writeDataSet(out);
}

export const headerDigest = (label: 'original' | 'protected', ds: DataSet): Uint8Array =>
  taggedHash(`ZTV/header/${label}/v1`, canonicalHeader(ds));

export function pixelDigest(info: PixelInfo, data: Uint8Array): Uint8Array {
  const shape = concatBytes(
    u32be(info.rows),
    u32be(info.columns),
    u32be(info.frames),
    u32be(info.samplesPerPixel),
    u32be(info.bitsAllocated),
    u32be(info.bitsStored),
    u32be(info.pixelRepresentation),
    u32be(info.planarConfiguration),
    u32be(info.pixelTag),
  );
  return taggedHash('ZTV/pixels/v1', shape, data);
}

export const keyCommitment = (key: Uint8Array, iv: Uint8Array): Uint8Array =>
  taggedHash('ZTV/key-commitment/v1', key, iv);

/** A copy of the ciphertext with the container planes of samples [0, K) cleared. */
export function maskContainer(ct: Uint8Array, g: Geometry, K: number, L: number): Uint8Array {
  const out = ct.slice();
  const m = ~((1 << L) - 1) & 0xff;
  for (let i = 0; i < K; i++) out[i * g.wordBytes] = out[i * g.wordBytes]! & m;
  return out;
}

export interface TileDigests {
  /** 8-byte tags, tile after tile: what the container stores. */
  readonly tags: Uint8Array;
  /** Digest over the full tile hashes: what the seal binds for the whole ciphertext. */
  readonly ciphertextDigest: Uint8Array;
}

/** Hashes each tile of the masked ciphertext, bound to the image (IV), frame and tile index. */
export function tileDigests(
  masked: Uint8Array,
  g: Geometry,
  grid: TileGrid,
  iv: Uint8Array,
): TileDigests {
  const full = new Uint8Array(grid.count * 32);
  const tags = new Uint8Array(grid.count * TILE_TAG_LENGTH);
  const label = new TextEncoder().encode('ZTV/tile/v1\0');
  for (let n = 0; n < grid.count; n++) {
    const t = tileAt(g, grid, n);
    const h = sha256.create();
    h.update(label).update(iv).update(u32be(t.frame)).update(u32be(t.index));
    forEachTileSegment(g, t, (s, e) => h.update(masked.subarray(s, e)));
    const d = h.digest();
    full.set(d, n * 32);
    tags.set(d.subarray(0, TILE_TAG_LENGTH), n * TILE_TAG_LENGTH);
  }
  return {
    tags,
    ciphertextDigest: taggedHash('ZTV/ciphertext/v1', iv, u32be(masked.length), full),
  };
}
