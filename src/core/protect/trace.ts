/**
 * Trace (cloud provider): write a trace identifier, the time and the cloud's signature into the
 * container's trace slot — in place in the stored bytes, without any key, changing nothing else.
 * docs/protection.md, "Overview", step 5.
 */
import { fromHex, utf8 } from '../bytes.ts';
import { SIG_ALG_CODE, type SigningKey } from '../crypto/keys.ts';
import { assertInput, ZtvError } from '../errors.ts';
import {
  encodeTraceSlot,
  TRACE_ID_LENGTH,
  TRACE_SLOT_LENGTH,
  traceMessage,
  writeRegionBits,
} from './container.ts';
import { readProtected, type ProtectedImage } from './image.ts';

export interface TraceOptions {
  /** The cloud provider's signing key. */
  readonly signer: SigningKey;
  /** W_trace: 32 bytes (a pseudonymous ticket/requester reference). */
  readonly traceId: Uint8Array;
  readonly now?: Date;
  readonly what?: string;
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
}

/** The trace basis of a protected image (refused if its container is damaged). */
export function traceBasis(bytes: Uint8Array, what = 'the image'): TraceBasis {
  return traceBasisOf(readProtected(bytes, what), what);
}

/** The trace basis of an image read already (`readProtected`). */
export function traceBasisOf(img: ProtectedImage, what = 'the image'): TraceBasis {
  const { c } = traceableImage(img, what);
  return { sealedBytes: c.sealedBytes, sealSignature: c.sealSignature };
}

/** The signed trace slot (128 bytes) for `bytes`, without writing it: the cloud stores it. */
export async function signTraceSlot(bytes: Uint8Array, opts: TraceOptions): Promise<Uint8Array> {
  return signTraceBasis(traceBasis(bytes, opts.what ?? 'the image'), opts);
}

/** The signed trace slot for an image known by its trace basis. */
export async function signTraceBasis(basis: TraceBasis, opts: TraceOptions): Promise<Uint8Array> {
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

/** A copy of `bytes` with `slot` written into its container's trace slot (no key, nothing else changes). */
export function writeTraceSlot(
  bytes: Uint8Array,
  slot: Uint8Array,
  what = 'the image',
): Uint8Array {
  assertInput(slot.length === TRACE_SLOT_LENGTH, `a trace slot is ${TRACE_SLOT_LENGTH} bytes`);
  const { img, c, offset } = traceable(bytes, what);
  const out = bytes.slice();
  const pixels = out.subarray(offset, offset + img.data.length);
  writeRegionBits(
    pixels,
    img.g,
    img.L,
    slot,
    (c.fields.containerBytes - TRACE_SLOT_LENGTH) * 8,
    TRACE_SLOT_LENGTH * 8,
  );
  return out;
}

/** Returns a copy of `bytes` whose trace slot holds the signed trace (any earlier trace is replaced). */
export async function traceProtected(bytes: Uint8Array, opts: TraceOptions): Promise<Uint8Array> {
  return writeTraceSlot(bytes, await signTraceSlot(bytes, opts), opts.what);
}
