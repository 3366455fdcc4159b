/**
 * The protection container (format versions 1 and 2): a big-endian record written in clear into the
 * low `L` bit planes of samples [0, K) of the encrypted image. Its sealed part is signed by the
 * producer hospital; its trace slot is written and signed by the cloud without any key — one
 * signature per image in v1, one per release over a Merkle tree in v2. Layout in docs/protection.md.
 */
import { concatBytes, equalBytes, readU16be, readU32be, readU64be, utf8 } from '../bytes.ts';
import { taggedHash } from '../crypto/hash.ts';
import { SIGNATURE_LENGTH } from '../crypto/keys.ts';
import { assertInput, ZtvError } from '../errors.ts';
import type { Geometry } from './geometry.ts';

export const MAGIC = Uint8Array.of(0x5a, 0x54, 0x56, 0x43); // "ZTVC"
/** The version protect writes; readers accept every version of `FORMAT_VERSIONS`. */
export const FORMAT_VERSION = 2;
export const FORMAT_VERSIONS: readonly number[] = [1, 2];
export const FIXED_LENGTH = 264;
export const TILE_TAG_LENGTH = 8;
/** The v1 trace slot: one cloud signature per image. */
export const TRACE_SLOT_LENGTH = 128;
export const TRACE_ID_LENGTH = 32;
export const REDEMPTION_ID_LENGTH = 16;
/** Deepest inclusion path a v2 slot holds: a release tree has at most 2^10 = 1024 leaves. */
export const MAX_TRACE_DEPTH = 10;
export const MAX_TREE_LEAVES = 2 ** MAX_TRACE_DEPTH;
const V2_PATH_AT = 212;
/** The v2 trace slot: leaf, inclusion path, root and the root's signature. */
export const TRACE_SLOT_V2_LENGTH = V2_PATH_AT + MAX_TRACE_DEPTH * 32;

/** The trace slot's length in a container of `version`. */
export const traceSlotLength = (version: number): number =>
  version >= 2 ? TRACE_SLOT_V2_LENGTH : TRACE_SLOT_LENGTH;
/** Container bit planes tried when looking for the magic. */
export const MAX_L = 8;

export const CIPHER = { 'AES-128-CTR': 1, 'AES-256-CTR': 2 } as const;
export type CipherName = keyof typeof CIPHER;

export const FLAG_LOSSY_SOURCE = 1;
/**
 * The pixels are encrypted under the pixel key K_p = `pixelKey(K_i)`, the attributes under K_i, and
 * the key commitment is K_p's: a holder of K_p opens the pixels and the pseudonymised header only,
 * a holder of K_i everything (docs/protection.md, "Disclosure bound to purpose"). Images sealed
 * before this flag existed have it clear and open with K_i alone, as they always did.
 */
export const FLAG_PIXEL_KEY = 2;

export interface SealedFields {
  readonly version: number;
  readonly flags: number;
  readonly containerBytes: number;
  /** Container bit planes. */
  readonly L: number;
  /** Payload bits per expanded sample. */
  readonly k: number;
  readonly cipher: number;
  readonly sigAlg: number;
  /** Data-hiding threshold. */
  readonly T: number;
  readonly payloadBits: number;
  readonly tileSide: number;
  readonly tileCount: number;
  /** Initial AES-CTR counter block (random per image). */
  readonly iv: Uint8Array;
  readonly createdAt: number;
  readonly patientRef: Uint8Array;
  readonly physicianRef: Uint8Array;
  readonly signerKeyId: Uint8Array;
  readonly originalPixelDigest: Uint8Array;
  readonly originalHeaderDigest: Uint8Array;
  readonly protectedHeaderDigest: Uint8Array;
  readonly ciphertextDigest: Uint8Array;
  readonly keyCommitment: Uint8Array;
  /** tileCount × 8 bytes. */
  readonly tileTags: Uint8Array;
}

/** A v1 trace: the cloud's signature over this image's seal and the trace. */
export interface TraceSlot {
  readonly version?: 1;
  readonly traceId: Uint8Array;
  readonly tracedAt: number;
  readonly sigAlg: number;
  readonly cloudKeyId: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * A v2 trace: this image's leaf (trace id, time, redemption id, bound to the image's seal digest),
 * its inclusion path in the release's tree, the root and the cloud's one signature over the root.
 */
export interface TraceSlotV2 {
  readonly version: 2;
  readonly sigAlg: number;
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly traceId: Uint8Array;
  readonly tracedAt: number;
  readonly redemptionId: Uint8Array;
  readonly cloudKeyId: Uint8Array;
  /** The seal digest of the image the leaf was made for (`sealDigest`). */
  readonly seal: Uint8Array;
  readonly root: Uint8Array;
  /** The cloud's signature over `rootMessage`. */
  readonly signature: Uint8Array;
  /** Sibling hashes, bottom-up. */
  readonly path: readonly Uint8Array[];
}

export type AnyTraceSlot = TraceSlot | TraceSlotV2;

export interface Container {
  readonly fields: SealedFields;
  /** Bytes covered by the producer's signature. */
  readonly sealedBytes: Uint8Array;
  readonly sealSignature: Uint8Array;
  /** Undefined while no cloud has traced the image (or when the slot is malformed). */
  readonly trace?: AnyTraceSlot;
  /** Why the trace slot could not be read, when it is neither empty nor well formed. */
  readonly traceError?: string;
  /** The raw trace slot (all zero when empty). */
  readonly traceSlot: Uint8Array;
}

export const containerLength = (tileCount: number, version = FORMAT_VERSION): number =>
  FIXED_LENGTH + tileCount * TILE_TAG_LENGTH + SIGNATURE_LENGTH + traceSlotLength(version);

/** The message the producer signs: a label, then the sealed bytes. */
export const sealMessage = (sealedBytes: Uint8Array): Uint8Array =>
  concatBytes(utf8('ZTV seal v1\0'), sealedBytes);

function u16(n: number): Uint8Array {
  return Uint8Array.of((n >>> 8) & 0xff, n & 0xff);
}
function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}
function u64(n: number): Uint8Array {
  return concatBytes(u32(Math.floor(n / 2 ** 32)), u32(n >>> 0));
}

function fixedLength(b: Uint8Array, n: number, what: string): Uint8Array {
  if (b.length !== n)
    throw new ZtvError('bad-input', `${what} must be ${n} bytes, not ${b.length}`);
  return b;
}

/** Encodes the sealed part (everything the producer signs). */
export function encodeSealed(f: SealedFields): Uint8Array {
  if (f.tileTags.length !== f.tileCount * TILE_TAG_LENGTH)
    throw new ZtvError('bad-input', 'tile tags do not match the tile count');
  const out = concatBytes(
    MAGIC,
    u16(f.version),
    u16(f.flags),
    u32(f.containerBytes),
    Uint8Array.of(f.L, f.k, f.cipher, f.sigAlg),
    u32(f.T),
    u32(f.payloadBits),
    u16(f.tileSide),
    u32(f.tileCount),
    u16(0),
    fixedLength(f.iv, 16, 'iv'),
    u64(f.createdAt),
    fixedLength(f.patientRef, 16, 'patient reference'),
    fixedLength(f.physicianRef, 16, 'physician reference'),
    fixedLength(f.signerKeyId, 16, 'signer key id'),
    fixedLength(f.originalPixelDigest, 32, 'original pixel digest'),
    fixedLength(f.originalHeaderDigest, 32, 'original header digest'),
    fixedLength(f.protectedHeaderDigest, 32, 'protected header digest'),
    fixedLength(f.ciphertextDigest, 32, 'ciphertext digest'),
    fixedLength(f.keyCommitment, 32, 'key commitment'),
    f.tileTags,
  );
  if (out.length !== FIXED_LENGTH + f.tileTags.length)
    throw new Error('container layout drifted from FIXED_LENGTH');
  return out;
}

/** The slot of `t` (v1 or v2), or an empty slot of a container of `version` when `t` is undefined. */
export function encodeTraceSlot(t: AnyTraceSlot | undefined, version = 1): Uint8Array {
  if (!t) return new Uint8Array(traceSlotLength(version));
  if (t.version === 2) return encodeTraceSlotV2(t);
  const out = concatBytes(
    Uint8Array.of(1, t.sigAlg),
    u16(0),
    fixedLength(t.traceId, TRACE_ID_LENGTH, 'trace id'),
    u64(t.tracedAt),
    fixedLength(t.cloudKeyId, 16, 'cloud key id'),
    fixedLength(t.signature, SIGNATURE_LENGTH, 'trace signature'),
    new Uint8Array(4),
  );
  if (out.length !== TRACE_SLOT_LENGTH) throw new Error('trace slot layout drifted');
  return out;
}

/** Encodes a v2 trace slot; unused path entries stay zero. */
export function encodeTraceSlotV2(t: TraceSlotV2): Uint8Array {
  if (t.path.length > MAX_TRACE_DEPTH)
    throw new ZtvError('bad-input', 'the inclusion path is too long');
  const out = concatBytes(
    Uint8Array.of(2, t.sigAlg, t.path.length, 0),
    u32(t.leafIndex),
    u32(t.treeSize),
    fixedLength(t.traceId, TRACE_ID_LENGTH, 'trace id'),
    u64(t.tracedAt),
    fixedLength(t.redemptionId, REDEMPTION_ID_LENGTH, 'redemption id'),
    fixedLength(t.cloudKeyId, 16, 'cloud key id'),
    fixedLength(t.seal, 32, 'seal digest'),
    fixedLength(t.root, 32, 'root'),
    fixedLength(t.signature, SIGNATURE_LENGTH, 'root signature'),
    ...t.path.map((p) => fixedLength(p, 32, 'path entry')),
    new Uint8Array((MAX_TRACE_DEPTH - t.path.length) * 32),
  );
  if (out.length !== TRACE_SLOT_V2_LENGTH) throw new Error('v2 trace slot layout drifted');
  return out;
}

/**
 * The seal digest a v2 leaf names: the image's whole seal (sealed bytes and signature), so a leaf
 * cannot be moved to another image.
 */
export const sealDigest = (sealedBytes: Uint8Array, sealSignature: Uint8Array): Uint8Array =>
  taggedHash('ZTV/seal/v2', u32(sealedBytes.length), sealedBytes, sealSignature);

/** A v2 leaf: the trace record of one image in one release. */
export const traceLeaf = (
  t: Pick<TraceSlotV2, 'seal' | 'traceId' | 'tracedAt' | 'redemptionId'>,
): Uint8Array =>
  concatBytes(utf8('ZTV trace leaf v2\0'), t.seal, t.traceId, u64(t.tracedAt), t.redemptionId);

/** What the cloud signs once per release (per tree): the root, the tree's size and the release. */
export const rootMessage = (
  t: Pick<TraceSlotV2, 'root' | 'treeSize' | 'redemptionId' | 'tracedAt' | 'sigAlg' | 'cloudKeyId'>,
): Uint8Array =>
  concatBytes(
    utf8('ZTV trace root v2\0'),
    t.root,
    u32(t.treeSize),
    t.redemptionId,
    u64(t.tracedAt),
    Uint8Array.of(t.sigAlg),
    t.cloudKeyId,
  );

/** The message the cloud signs for a trace: it binds the whole seal, the trace and its time. */
export function traceMessage(
  sealedBytes: Uint8Array,
  sealSignature: Uint8Array,
  t: Omit<TraceSlot, 'signature'>,
): Uint8Array {
  return concatBytes(
    utf8('ZTV trace v1\0'),
    u32(sealedBytes.length),
    sealedBytes,
    sealSignature,
    t.traceId,
    u64(t.tracedAt),
    Uint8Array.of(t.sigAlg),
    t.cloudKeyId,
  );
}

/** Reads the fixed header far enough to know the container's length (after the magic matched). */
export function peekContainerBytes(head: Uint8Array): { version: number; containerBytes: number } {
  return { version: readU16be(head, 4), containerBytes: readU32be(head, 8) };
}

/** Parses a whole container; structural errors are integrity errors (the container was altered). */
export function decodeContainer(b: Uint8Array): Container {
  const bad = (why: string): never => {
    throw new ZtvError('integrity', `the container is malformed: ${why}`);
  };
  if (b.length < FIXED_LENGTH + SIGNATURE_LENGTH + TRACE_SLOT_LENGTH) bad('it is too short');
  const version = readU16be(b, 4);
  if (!FORMAT_VERSIONS.includes(version)) bad(`its version ${version} is unknown`);
  const tileCount = readU32be(b, 26);
  const tileBytes = tileCount * TILE_TAG_LENGTH;
  if (b.length !== containerLength(tileCount, version))
    bad('its length does not match its tile count');
  const at = (o: number, n: number) => b.slice(o, o + n);
  const fields: SealedFields = {
    version,
    flags: readU16be(b, 6),
    containerBytes: readU32be(b, 8),
    L: b[12]!,
    k: b[13]!,
    cipher: b[14]!,
    sigAlg: b[15]!,
    T: readU32be(b, 16),
    payloadBits: readU32be(b, 20),
    tileSide: readU16be(b, 24),
    tileCount,
    iv: at(32, 16),
    createdAt: readU64be(b, 48),
    patientRef: at(56, 16),
    physicianRef: at(72, 16),
    signerKeyId: at(88, 16),
    originalPixelDigest: at(104, 32),
    originalHeaderDigest: at(136, 32),
    protectedHeaderDigest: at(168, 32),
    ciphertextDigest: at(200, 32),
    keyCommitment: at(232, 32),
    tileTags: at(FIXED_LENGTH, tileBytes),
  };
  if (!equalBytes(b.subarray(0, 4), MAGIC)) bad('its magic is wrong');
  if (b[30] !== 0 || b[31] !== 0) bad('reserved bytes are not zero');
  const sealedEnd = FIXED_LENGTH + tileBytes;
  const sealSignature = at(sealedEnd, SIGNATURE_LENGTH);
  const traceSlot = at(sealedEnd + SIGNATURE_LENGTH, traceSlotLength(version));
  let trace: AnyTraceSlot | undefined;
  let traceError: string | undefined;
  try {
    trace = version >= 2 ? decodeTraceSlotV2(traceSlot) : decodeTraceSlot(traceSlot);
  } catch (e) {
    if (!(e instanceof ZtvError)) throw e;
    traceError = e.message;
  }
  return {
    fields,
    sealedBytes: b.slice(0, sealedEnd),
    sealSignature,
    traceSlot,
    ...(trace ? { trace } : {}),
    ...(traceError ? { traceError } : {}),
  };
}

/** Every byte of the slot is either signed or must be zero: nothing in it can change unnoticed. */
function decodeTraceSlot(s: Uint8Array): TraceSlot | undefined {
  if (s.every((x) => x === 0)) return undefined;
  if (s[0] !== 1) throw new ZtvError('integrity', `the trace slot has an unknown version ${s[0]}`);
  if (s[2] !== 0 || s[3] !== 0 || s.subarray(124).some((x) => x !== 0))
    throw new ZtvError('integrity', 'the trace slot has non-zero reserved bytes');
  return {
    sigAlg: s[1]!,
    traceId: s.slice(4, 36),
    tracedAt: readU64be(s, 36),
    cloudKeyId: s.slice(44, 60),
    signature: s.slice(60, 124),
  };
}

/** A v2 slot: every byte signed, hashed into the root, or zero; its shape must fit its tree. */
function decodeTraceSlotV2(s: Uint8Array): TraceSlotV2 | undefined {
  if (s.every((x) => x === 0)) return undefined;
  const bad = (why: string): never => {
    throw new ZtvError('integrity', `the trace slot is malformed: ${why}`);
  };
  if (s[0] !== 2) bad(`its version ${s[0]} is not that of the container (2)`);
  const depth = s[2]!;
  if (depth > MAX_TRACE_DEPTH) bad(`its inclusion path of ${depth} hashes is too long`);
  if (s[3] !== 0 || s.subarray(V2_PATH_AT + depth * 32).some((x) => x !== 0))
    bad('reserved bytes are not zero');
  const leafIndex = readU32be(s, 4);
  const treeSize = readU32be(s, 8);
  if (treeSize === 0 || treeSize > MAX_TREE_LEAVES || leafIndex >= treeSize)
    bad(`leaf ${leafIndex} of a tree of ${treeSize} is impossible`);
  const path: Uint8Array[] = [];
  for (let i = 0; i < depth; i++)
    path.push(s.slice(V2_PATH_AT + 32 * i, V2_PATH_AT + 32 * (i + 1)));
  return {
    version: 2,
    sigAlg: s[1]!,
    leafIndex,
    treeSize,
    traceId: s.slice(12, 44),
    tracedAt: readU64be(s, 44),
    redemptionId: s.slice(52, 68),
    cloudKeyId: s.slice(68, 84),
    seal: s.slice(84, 116),
    root: s.slice(116, 148),
    signature: s.slice(148, 212),
    path,
  };
}

/** Sample count K of the region that holds `bytes` container bytes in L planes. */
export const regionSamples = (bytes: number, L: number): number => Math.ceil((bytes * 8) / L);

/**
 * Writes `bitCount` bits of `bits` (MSB first) at container bit `fromBit` into the low L bits of
 * little-endian samples, in place. Container bit n lives in sample ⌊n/L⌋, bit plane L−1−(n mod L)
 * (L ≤ 8: always in the sample's first byte).
 */
export function writeRegionBits(
  data: Uint8Array,
  g: Pick<Geometry, 'wordBytes'>,
  L: number,
  bits: Uint8Array,
  fromBit: number,
  bitCount: number,
): void {
  assertInput(Number.isInteger(L) && L >= 1 && L <= MAX_L, 'the container has 1 to 8 planes');
  const wb = g.wordBytes;
  let byte = Math.floor(fromBit / L) * wb;
  let j = fromBit % L;
  for (let s = 0; s < bitCount; s++) {
    const m = 1 << (L - 1 - j);
    const bit = (bits[s >>> 3]! >>> (7 - (s & 7))) & 1;
    data[byte] = bit ? data[byte]! | m : data[byte]! & ~m;
    if (++j === L) {
      j = 0;
      byte += wb;
    }
  }
}

/** Reads `bitCount` bits starting at container bit `fromBit` from the low L bits of the samples. */
export function readRegionBits(
  data: Uint8Array,
  g: Geometry,
  L: number,
  fromBit: number,
  bitCount: number,
): Uint8Array {
  assertInput(Number.isInteger(L) && L >= 1 && L <= MAX_L, 'the container has 1 to 8 planes');
  const out = new Uint8Array(Math.ceil(bitCount / 8));
  const wb = g.wordBytes;
  let byte = Math.floor(fromBit / L) * wb;
  let j = fromBit % L;
  let acc = 0;
  for (let s = 0; s < bitCount; s++) {
    acc = (acc << 1) | ((data[byte]! >>> (L - 1 - j)) & 1);
    if ((s & 7) === 7) {
      out[s >>> 3] = acc;
      acc = 0;
    }
    if (++j === L) {
      j = 0;
      byte += wb;
    }
  }
  if (bitCount & 7) out[bitCount >>> 3] = acc << (8 - (bitCount & 7));
  return out;
}

const popcount = (x: number): number => {
  let n = 0;
  for (let v = x; v; v &= v - 1) n++;
  return n;
};

export interface Located {
  readonly L: number;
  /** Bits of the magic and of the L byte that differ from what they should be (0 when intact). */
  readonly damage: number;
}

/**
 * Finds the container's bit-plane count L: the magic "ZTVC" must start the stream read with L planes,
 * and byte 12 must say L. Up to 3 flipped bits there still count (the container is then damaged,
 * which the signature check reports); anything further means the image carries no container.
 */
export function locateContainer(data: Uint8Array, g: Geometry): Located | undefined {
  let best: Located | undefined;
  for (let L = 1; L <= Math.min(MAX_L, g.bitsStored - 1); L++) {
    if (Math.ceil(104 / L) > g.count) break;
    const head = readRegionBits(data, g, L, 0, 104);
    let damage = popcount(head[12]! ^ L);
    for (let i = 0; i < 4; i++) damage += popcount(head[i]! ^ MAGIC[i]!);
    if (damage === 0) return { L, damage };
    if (damage <= 3 && (!best || damage < best.damage)) best = { L, damage };
  }
  return best;
}
