/**
 * Trace (cloud provider): write a trace identifier, the time and the cloud's signature into the
 * container's trace slot — in place in the stored bytes, without any key, changing nothing else.
 * v1 containers get one signature each; v2 containers of one release share one signature over the
 * root of a Merkle tree of their trace records (`signRelease`). docs/protection.md, "Trace".
 */
import { fromHex, randomBytes, readU16be, utf8 } from '../bytes.ts';
import { SIG_ALG_CODE, type SigningKey } from '../crypto/keys.ts';
import { assertInput, ZtvError } from '../errors.ts';
import {
  encodeTraceSlot,
  encodeTraceSlotV2,
  MAX_TREE_LEAVES,
  REDEMPTION_ID_LENGTH,
  rootMessage,
  sealDigest,
  TRACE_ID_LENGTH,
  TRACE_SLOT_LENGTH,
  TRACE_SLOT_V2_LENGTH,
  traceLeaf,
  traceMessage,
  traceSlotLength,
  writeRegionBits,
  type TraceSlotV2,
} from './container.ts';
import { inclusionPaths, leafHash } from './merkle.ts';
import { readProtected, type ProtectedImage } from './image.ts';

export interface TraceOptions {
  /** The cloud provider's signing key. */
  readonly signer: SigningKey;
  /** W_trace: 32 bytes (a pseudonymous ticket/requester reference). */
  readonly traceId: Uint8Array;
  readonly now?: Date;
  readonly what?: string;
  /** v2: the redemption (release) the trace belongs to, 16 bytes; random when not given. */
  readonly redemptionId?: Uint8Array;
}

/** A trace id from text: 64 hex digits are taken as bytes, other text (≤ 32 bytes) is zero-padded. */
export function traceIdFrom(text: string): Uint8Array {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return fromHex(text);
  const raw = utf8(text);
  assertInput(raw.length > 0, 'the trace identifier is empty');
  assertInput(
    raw.length <= TRACE_ID_LENGTH,
    `the trace identifier is ${raw.length} bytes long; at most ${TRACE_ID_LENGTH} fit (or give 64 hex digits)`,
  );
  const out = new Uint8Array(TRACE_ID_LENGTH);
  out.set(raw);
  return out;
}

function traceable(bytes: Uint8Array, what: string) {
  return traceableImage(readProtected(bytes, what), what);
}

function traceableImage(img: ProtectedImage, what: string) {
  const c = img.container;
  if (!c || img.damage > 0)
    throw new ZtvError(
      'integrity',
      `${what} has a damaged protection container${img.containerError ? ` (${img.containerError})` : ''}: refusing to trace it`,
    );
  const malformed = img.metaProblem ?? img.encodingProblem;
  if (malformed)
    throw new ZtvError(
      'integrity',
      `${what} is not a well-formed protected image (${malformed}): refusing to trace it`,
    );
  if (img.parsed.pixelDataOffset === undefined)
    throw new ZtvError(
      'not-protected',
      `${what} does not hold its pixel data where it can be traced`,
    );
  return { img, c, offset: img.parsed.pixelDataOffset };
}

/**
 * What a trace signature covers of an image: its sealed container bytes and the producer's seal
 * signature. Public (the container is in clear); the cloud reads it once when it stores the image
 * and signs traces from it without reading the image again.
 */
export interface TraceBasis {
  readonly sealedBytes: Uint8Array;
  readonly sealSignature: Uint8Array;
  /** Where the trace slot lies in the file, for stamping without reading the image again. */
  readonly placement?: TracePlacement;
  /** v2: the seal digest its trace leaves name, computed once when the image is stored. */
  readonly sealDigest?: Uint8Array;
}

/**
 * Where an image's trace slot lies in its file: the pixel data's byte offset, the word size, the
 * container's bit planes L, and the slot's first container bit and bit count. Recorded when the
 * cloud stores the image (it reads the image then); `stampTraceSlot` writes a slot by it.
 */
export interface TracePlacement {
  readonly offset: number;
  readonly wordBytes: number;
  readonly L: number;
  readonly fromBit: number;
  readonly bits: number;
}

/** The trace basis of a protected image (refused if its container is damaged). */
export function traceBasis(bytes: Uint8Array, what = 'the image'): TraceBasis {
  return traceBasisOf(readProtected(bytes, what), what);
}

/** The trace basis of an image read already (`readProtected`), with where its slot lies. */
export function traceBasisOf(img: ProtectedImage, what = 'the image'): TraceBasis {
  const { c, offset } = traceableImage(img, what);
  const length = traceSlotLength(c.fields.version);
  return {
    sealedBytes: c.sealedBytes,
    sealSignature: c.sealSignature,
    ...(c.fields.version >= 2 ? { sealDigest: sealDigest(c.sealedBytes, c.sealSignature) } : {}),
    placement: {
      offset,
      wordBytes: img.g.wordBytes,
      L: img.L,
      fromBit: (c.fields.containerBytes - length) * 8,
      bits: length * 8,
    },
  };
}

/** The last file byte (exclusive) a slot written at `p` touches. */
const placementEnd = (p: TracePlacement): number =>
  p.offset + Math.ceil((p.fromBit + p.bits) / p.L) * p.wordBytes;

/** Whether `p` is a placement a trace slot can have in a file of `size` bytes. */
export function placementFits(p: TracePlacement, size: number): boolean {
  const int = (n: number) => Number.isSafeInteger(n) && n >= 0;
  return (
    int(p.offset) &&
    int(p.fromBit) &&
    [1, 2, 4].includes(p.wordBytes) &&
    Number.isInteger(p.L) &&
    p.L >= 1 &&
    p.L <= 8 &&
    (p.bits === TRACE_SLOT_LENGTH * 8 || p.bits === TRACE_SLOT_V2_LENGTH * 8) &&
    placementEnd(p) <= size
  );
}

/**
 * Writes `slot` into `bytes` in place at the placement recorded when the image was stored: no parse,
 * no copy (the cloud's retrieval; the bytes are its own fresh read of the stored blob). The result is
 * the same file `writeTraceSlot` makes (tested); a placement that does not fit is refused.
 */
export function stampTraceSlot(
  bytes: Uint8Array,
  placement: TracePlacement,
  slot: Uint8Array,
): Uint8Array {
  assertInput(placementFits(placement, bytes.length), 'the trace placement does not fit the image');
  assertInput(slot.length * 8 === placement.bits, 'the trace slot does not fit its placement');
  writeRegionBits(
    bytes.subarray(placement.offset),
    { wordBytes: placement.wordBytes as 1 | 2 | 4 },
    placement.L,
    slot,
    placement.fromBit,
    placement.bits,
  );
  return bytes;
}

/** The signed trace slot (128 bytes) for `bytes`, without writing it: the cloud stores it. */
export async function signTraceSlot(bytes: Uint8Array, opts: TraceOptions): Promise<Uint8Array> {
  return signTraceBasis(traceBasis(bytes, opts.what ?? 'the image'), opts);
}

/** The container format version of an image known by its trace basis. */
export const basisVersion = (basis: TraceBasis): number => readU16be(basis.sealedBytes, 4);

/**
 * The signed trace slot for an image known by its trace basis: a v1 slot, or for a v2 image a
 * release of one (a tree of one leaf).
 */
export async function signTraceBasis(basis: TraceBasis, opts: TraceOptions): Promise<Uint8Array> {
  if (basisVersion(basis) >= 2) {
    const release = await signRelease([{ basis, traceId: opts.traceId }], opts);
    return release.slots[0]!;
  }
  assertInput(opts.traceId.length === TRACE_ID_LENGTH, `a trace id is ${TRACE_ID_LENGTH} bytes`);
  const c = basis;
  const unsigned = {
    traceId: opts.traceId,
    tracedAt: (opts.now ?? new Date()).getTime(),
    sigAlg: SIG_ALG_CODE[opts.signer.alg],
    cloudKeyId: opts.signer.publicKey.keyId,
  };
  const signature = await opts.signer.sign(traceMessage(c.sealedBytes, c.sealSignature, unsigned));
  return encodeTraceSlot({ ...unsigned, signature });
}

export interface ReleaseOptions {
  readonly signer: SigningKey;
  /** The redemption the release belongs to (16 bytes); random when not given. */
  readonly redemptionId?: Uint8Array;
  readonly now?: Date;
}

/** One signed tree of a release: its root, its size and the root's signature. */
export interface SignedRoot {
  readonly root: Uint8Array;
  readonly leaves: number;
  readonly signature: Uint8Array;
}

export interface SignedRelease {
  /** One trace slot per item, in the items' order (v1 or v2 as each image's container). */
  readonly slots: Uint8Array[];
  /** The signed roots of the v2 images' trees (one per 1024 v2 images; none when all are v1). */
  readonly roots: SignedRoot[];
  readonly redemptionId: Uint8Array;
}

/**
 * The traces of one release: every v2 image's trace record (seal digest, trace id, time, redemption
 * id) becomes a leaf of a Merkle tree whose root the cloud signs once (one tree per 1024 images);
 * each slot carries its leaf's fields, its inclusion path, the root and that signature. v1 images
 * (stored before v2) get their own v1 signature each. Every trace is fixed when this returns.
 */
export async function signRelease(
  items: readonly { readonly basis: TraceBasis; readonly traceId: Uint8Array }[],
  opts: ReleaseOptions,
): Promise<SignedRelease> {
  const redemptionId = opts.redemptionId ?? randomBytes(REDEMPTION_ID_LENGTH);
  assertInput(
    redemptionId.length === REDEMPTION_ID_LENGTH,
    `a redemption id is ${REDEMPTION_ID_LENGTH} bytes`,
  );
  for (const it of items)
    assertInput(it.traceId.length === TRACE_ID_LENGTH, `a trace id is ${TRACE_ID_LENGTH} bytes`);
  const now = opts.now ?? new Date();
  const tracedAt = now.getTime();
  const sigAlg = SIG_ALG_CODE[opts.signer.alg];
  const cloudKeyId = opts.signer.publicKey.keyId;
  const slots: Uint8Array[] = new Array<Uint8Array>(items.length);
  const v2 = items.flatMap((it, i) => (basisVersion(it.basis) >= 2 ? [i] : []));
  const v1 = items.flatMap((it, i) => (basisVersion(it.basis) >= 2 ? [] : [i]));
  const roots: SignedRoot[] = [];
  const trees: Promise<void>[] = [];
  for (let from = 0; from < v2.length; from += MAX_TREE_LEAVES) {
    const members = v2.slice(from, from + MAX_TREE_LEAVES);
    const fields = members.map((i) => {
      const b = items[i]!.basis;
      const seal = b.sealDigest ?? sealDigest(b.sealedBytes, b.sealSignature);
      return { seal, traceId: items[i]!.traceId, tracedAt, redemptionId };
    });
    const leaves = fields.map((f) => leafHash(traceLeaf(f)));
    const { root, paths } = inclusionPaths(leaves);
    const signedRoot = {
      root,
      treeSize: members.length,
      redemptionId,
      tracedAt,
      sigAlg,
      cloudKeyId,
    };
    const at = from / MAX_TREE_LEAVES;
    trees.push(
      opts.signer.sign(rootMessage(signedRoot)).then((signature) => {
        roots[at] = { root, leaves: members.length, signature };
        members.forEach((i, n) => {
          const slot: TraceSlotV2 = {
            version: 2,
            ...signedRoot,
            ...fields[n]!,
            leafIndex: n,
            signature,
            path: paths[n]!,
          };
          slots[i] = encodeTraceSlotV2(slot);
        });
      }),
    );
  }
  await Promise.all([
    ...trees,
    ...v1.map(async (i) => {
      slots[i] = await signTraceBasis(items[i]!.basis, {
        signer: opts.signer,
        traceId: items[i]!.traceId,
        now,
      });
    }),
  ]);
  return { slots, roots, redemptionId };
}

/** A copy of `bytes` with `slot` written into its container's trace slot (no key, nothing else changes). */
export function writeTraceSlot(
  bytes: Uint8Array,
  slot: Uint8Array,
  what = 'the image',
): Uint8Array {
  const { img, c, offset } = traceable(bytes, what);
  const length = traceSlotLength(c.fields.version);
  assertInput(
    slot.length === length,
    `a trace slot of a version ${c.fields.version} container is ${length} bytes`,
  );
  const out = bytes.slice();
  const pixels = out.subarray(offset, offset + img.data.length);
  writeRegionBits(pixels, img.g, img.L, slot, (c.fields.containerBytes - length) * 8, length * 8);
  return out;
}

/** Returns a copy of `bytes` whose trace slot holds the signed trace (any earlier trace is replaced). */
export async function traceProtected(bytes: Uint8Array, opts: TraceOptions): Promise<Uint8Array> {
  return writeTraceSlot(bytes, await signTraceSlot(bytes, opts), opts.what);
}
