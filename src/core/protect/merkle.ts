/**
 * The Merkle tree of protocol v2's release traces (RFC 9162 §2.1: leaf hash SHA-256(0x00 ‖ leaf),
 * node hash SHA-256(0x01 ‖ left ‖ right), any number of leaves): the cloud signs the root once per
 * release; each image carries its leaf's inclusion path, which `rootFromPath` folds back into the root.
 */
import { sha256 } from '@noble/hashes/sha2.js';

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export const leafHash = (leaf: Uint8Array): Uint8Array =>
  sha256.create().update(LEAF).update(leaf).digest();

export const nodeHash = (left: Uint8Array, right: Uint8Array): Uint8Array =>
  sha256.create().update(NODE).update(left).update(right).digest();

/** The largest power of two smaller than n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The tree's root over leaf hashes (at least one). */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) throw new Error('a Merkle tree has at least one leaf');
  if (leaves.length === 1) return leaves[0]!;
  const k = split(leaves.length);
  return nodeHash(merkleRoot(leaves.slice(0, k)), merkleRoot(leaves.slice(k)));
}

/**
 * Every leaf's inclusion path (RFC 9162 §2.1.3.1), bottom-up, computed in one walk of the tree:
 * O(n log n) hashes for the whole release.
 */
export function inclusionPaths(leaves: readonly Uint8Array[]): {
  root: Uint8Array;
  paths: Uint8Array[][];
} {
  if (leaves.length === 0) throw new Error('a Merkle tree has at least one leaf');
  const paths: Uint8Array[][] = leaves.map(() => []);
  const walk = (from: number, to: number): Uint8Array => {
    if (to - from === 1) return leaves[from]!;
    const k = split(to - from);
    const left = walk(from, from + k);
    const right = walk(from + k, to);
    for (let i = from; i < from + k; i++) paths[i]!.push(right);
    for (let i = from + k; i < to; i++) paths[i]!.push(left);
    return nodeHash(left, right);
  };
  return { root: walk(0, leaves.length), paths };
}

/**
 * The root that `path` leads to from leaf hash `leaf` at `index` of a tree of `size` leaves (RFC 9162
 * §2.1.3.2), or undefined when the path does not fit that position (too short or too long).
 */
export function rootFromPath(
  index: number,
  size: number,
  leaf: Uint8Array,
  path: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!(Number.isInteger(index) && Number.isInteger(size) && index >= 0 && index < size))
    return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return undefined;
    if (fn & 1 || fn === sn) {
      r = nodeHash(p, r);
      if (!(fn & 1))
        while (fn !== 0 && !(fn & 1)) {
          fn >>>= 1;
          sn >>>= 1;
        }
    } else r = nodeHash(r, p);
    fn >>>= 1;
    sn >>>= 1;
  }
  return sn === 0 ? r : undefined;
}

/** How many path entries a leaf at `index` of a tree of `size` leaves has. */
export function pathLength(index: number, size: number): number {
  let n = 0;
  let from = 0;
  let to = size;
  while (to - from > 1) {
    const k = split(to - from);
    if (index < from + k) to = from + k;
    else from += k;
    n++;
  }
  return n;
}
