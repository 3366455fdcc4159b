/**
 * Verify and open (viewer, auditor): check the container, the producer's seal, the cloud's trace,
 * the protected header and every ciphertext tile — none of which needs a key — then, with the image
 * key, decrypt, undo the data hiding and the de-identification, and check the restored pixels and
 * header against the seal (docs/protection.md, "Overview", step 6; "Verification and the verdict").
 */
import { equalBytes, fromUtf8, toHex } from '../bytes.ts';
import { SIG_ALG_BY_CODE } from '../crypto/keys.ts';
import type { DataSet } from '../dicom/dataset.ts';
import { reidentify } from '../dicom/deidentify.ts';
import type { PixelInfo } from '../dicom/pixels.ts';
import { T } from '../dicom/tags.ts';
import { writePart10 } from '../dicom/write.ts';
import { ZtvError } from '../errors.ts';
import { decryptAttributes } from './attributes.ts';
import { aesCtr, pixelKey, type CipherBackend } from './cipher.ts';
import {
  CIPHER,
  FLAG_PIXEL_KEY,
  FORMAT_VERSIONS,
  regionSamples,
  rootMessage,
  sealDigest,
  sealMessage,
  TILE_TAG_LENGTH,
  traceLeaf,
  traceMessage,
  type Container,
  type TraceSlotV2,
} from './container.ts';
import { leafHash, rootFromPath } from './merkle.ts';
import {
  ciphertextDigest,
  clearContainer,
  headerDigest,
  keyCommitment,
  lendContainer,
  maskContainer,
  maskedCiphertextDigest,
  pixelDigest,
  tileTags,
} from './digests.ts';
import { tileAt, tileGrid, type TileGrid } from './geometry.ts';
import { recover, recoversWords, recoverWords } from './hiding.ts';
import { readProtected, type ProtectedImage } from './image.ts';
import { readValues, writeValues } from './samples.ts';
import type { SignerResolver, SignerRole, TrustedSigner } from './signers.ts';
import {
  decide,
  type Check,
  type Part,
  type SignerReport,
  type TileReport,
  type TraceReport,
  type Verdict,
} from './verdict.ts';

export interface VerifyOptions {
  readonly resolver: SignerResolver;
  /**
   * With the image key K_i, pixels and attributes are decrypted and checked too; with the pixel key
   * K_p of an image sealed with `FLAG_PIXEL_KEY` (a ticket for a de-identified purpose), the pixels
   * only: the identifying attributes stay encrypted and the header restored is the pseudonymised one.
   */
  readonly imageKey?: Uint8Array;
  readonly backend?: CipherBackend;
  readonly what?: string;
  /**
   * The caller hands `bytes` over (a worker's transferred copy): the container planes are cleared
   * in place for the ciphertext digest instead of in a copy of the pixel data. Verdict and restored
   * image are the same either way (decryption then sees those planes cleared, and restoration
   * discards them in any case); `bytes` must not be used afterwards.
   */
  readonly consume?: boolean;
  /**
   * The caller lends `bytes` for the call (a worker that hands them back to the page, which keeps
   * them as served): as with `consume` the container planes are cleared in place — no copy of the
   * pixel data — and they are put back before `openProtected` settles, returned or thrown, so that
   * `bytes` then hold exactly what they held before. Nothing else may use `bytes` meanwhile.
   */
  readonly lend?: boolean;
  /**
   * Format v2: the release roots verified already, shared by the calls of one ticket, so that the
   * cloud's signature over a release's root is checked once, not once per image (`traceRootCache`).
   */
  readonly traceRoots?: TraceRootCache;
  /**
   * The release the caller redeemed (16-byte redemption id): a v2 trace of any other release is
   * reported as tampering (`trace.release`). Without it, any validly signed release verifies — an
   * auditor's case, who asks whom an image was released to.
   */
  readonly redemptionId?: Uint8Array;
}

/** Verified release roots, keyed by the signed message and signature (one per ticket or session). */
export type TraceRootCache = Map<string, Promise<SignatureResult>>;

export const traceRootCache = (): TraceRootCache => new Map();

export interface Restored {
  /**
   * The original data set, identifying attributes restored, with native pixel data; opened with a
   * pixel key, the pseudonymised (clear) header with the original pixels, and no encrypted attributes.
   */
  readonly dataset: DataSet;
  /** Whether the patient's identity was restored (false: opened with the pixel key K_p). */
  readonly identity: boolean;
  readonly info: PixelInfo;
  /** Native little-endian pixel bytes, bit-identical to the (decoded) original. */
  readonly pixels: Uint8Array;
  /** The restored image as an Explicit VR Little Endian Part 10 file. */
  readonly file: () => Uint8Array;
}

export interface Opened {
  readonly verdict: Verdict;
  /** Present when the image key was given and decryption produced an image (even a tampered one). */
  readonly restored?: Restored;
}

const iso = (ms: number): string => {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `invalid time ${ms}` : d.toISOString();
};

const signerReport = (s: TrustedSigner): SignerReport => ({
  subject: s.subject,
  chain: s.chain,
  keyId: s.key.keyIdHex,
});

function traceText(id: Uint8Array): string | undefined {
  let end = id.length;
  while (end > 0 && id[end - 1] === 0) end--;
  const body = id.subarray(0, end);
  if (body.length === 0 || !body.every((b) => b >= 0x20 && b < 0x7f)) return undefined;
  return fromUtf8(body);
}

class Checks {
  readonly list: Check[] = [];
  add(id: string, part: Part, result: Check['result'], detail: string): boolean {
    this.list.push({ id, part, result, detail });
    return result === 'pass';
  }
}

/**
 * The outcome of work started ahead of the point where its result is reported: opening starts every
 * independent step at once (WebCrypto signatures, digests and AES run off the JavaScript thread, in
 * parallel with the pixel work), then reports — or rethrows — each in the order of the checks.
 */
type Settled<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

function settleNow<T>(fn: () => T): Settled<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

function take<T>(s: Settled<T>): T {
  if (!s.ok) throw s.error;
  return s.value;
}

export interface SignatureResult {
  readonly checks: readonly Check[];
  readonly signer?: TrustedSigner;
}

async function verifySignature(
  resolver: SignerResolver,
  role: SignerRole,
  idPrefix: string,
  part: Part,
  keyId: Uint8Array,
  sigAlg: number,
  at: number,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<SignatureResult> {
  const checks = new Checks();
  const who = role === 'producer' ? "the producer's seal" : "the cloud's trace";
  const lookup = await resolver.resolve(keyId, role, new Date(at));
  if (!lookup.ok) {
    checks.add(
      `${idPrefix}.signer`,
      part,
      'unknown',
      `${who} signer is not trusted: ${lookup.reason}`,
    );
    return { checks: checks.list };
  }
  const signer = lookup.signer;
  checks.add(`${idPrefix}.signer`, part, 'pass', `${who} is signed by ${signer.subject}`);
  if (SIG_ALG_BY_CODE[sigAlg] !== signer.key.alg) {
    checks.add(`${idPrefix}.signature`, part, 'fail', `${who} names the wrong signature algorithm`);
    return { checks: checks.list, signer };
  }
  const ok = await signer.key.verify(signature, message);
  checks.add(
    `${idPrefix}.signature`,
    part,
    ok ? 'pass' : 'fail',
    ok ? `${who} signature is valid` : `${who} signature does not verify`,
  );
  return { checks: checks.list, signer };
}

/**
 * A v2 trace: the leaf must name this image's seal, its inclusion path must lead to the root the slot
 * carries, the cloud's signature over that root must verify (once per root with a cache), and with
 * an expected release the trace must belong to it. Each failure is its own check, with its reason.
 */
async function verifyTraceV2(
  opts: VerifyOptions,
  c: Container,
  t: TraceSlotV2,
): Promise<SignatureResult> {
  const checks = new Checks();
  const leafOk = equalBytes(t.seal, sealDigest(c.sealedBytes, c.sealSignature));
  checks.add(
    'trace.image',
    'trace',
    leafOk ? 'pass' : 'fail',
    leafOk
      ? "the trace record names this image's seal"
      : 'the trace record was made for another image (its seal digest is not this one)',
  );
  const root = rootFromPath(t.leafIndex, t.treeSize, leafHash(traceLeaf(t)), t.path);
  const pathOk = !!root && equalBytes(root, t.root);
  checks.add(
    'trace.path',
    'trace',
    pathOk ? 'pass' : 'fail',
    pathOk
      ? `the trace record is leaf ${t.leafIndex + 1} of the ${t.treeSize} of its release's tree`
      : "the inclusion path does not lead from the trace record to the release's signed root",
  );
  const message = rootMessage(t);
  const verify = () =>
    verifySignature(
      opts.resolver,
      'cloud',
      'trace',
      'trace',
      t.cloudKeyId,
      t.sigAlg,
      t.tracedAt,
      message,
      t.signature,
    );
  let signed: Promise<SignatureResult>;
  const cache = opts.traceRoots;
  if (cache) {
    const key = `${toHex(message)}:${toHex(t.signature)}`;
    signed = cache.get(key) ?? verify();
    if (!cache.has(key)) {
      cache.set(key, signed);
      // A failure (thrown) is not kept: the next image tries again.
      signed.catch(() => cache.delete(key));
    }
  } else signed = verify();
  const sig = await signed;
  checks.list.push(...sig.checks);
  if (opts.redemptionId) {
    const ours = equalBytes(opts.redemptionId, t.redemptionId);
    checks.add(
      'trace.release',
      'trace',
      ours ? 'pass' : 'fail',
      ours
        ? 'the trace belongs to the redemption this image was retrieved for'
        : `the trace belongs to another redemption (${toHex(t.redemptionId)})`,
    );
  }
  return { checks: checks.list, ...(sig.signer ? { signer: sig.signer } : {}) };
}

/** The tiles whose tags no longer match, in image pixels. */
function alteredTiles(
  img: ProtectedImage,
  grid: TileGrid,
  masked: Uint8Array,
  iv: Uint8Array,
  sealed: Uint8Array,
): TileReport[] {
  const now = tileTags(masked, img.g, grid, iv);
  const uw = img.g.packedBits ? 1 : img.g.unitWidth;
  const out: TileReport[] = [];
  for (let n = 0; n < grid.count; n++) {
    const at = n * TILE_TAG_LENGTH;
    if (
      equalBytes(now.subarray(at, at + TILE_TAG_LENGTH), sealed.subarray(at, at + TILE_TAG_LENGTH))
    )
      continue;
    const t = tileAt(img.g, grid, n);
    out.push({
      frame: t.frame + 1,
      index: t.index,
      x: t.x * uw,
      y: t.y,
      width: t.w * uw,
      height: t.h,
    });
  }
  return out;
}

/** Checks everything that needs no key, and with `imageKey` decrypts and restores the original. */
export async function openProtected(bytes: Uint8Array, opts: VerifyOptions): Promise<Opened> {
  if (!opts.lend) return openWith(bytes, opts);
  const undo: (() => void)[] = [];
  try {
    return await openWith(bytes, opts, undo);
  } finally {
    for (const putBack of undo) putBack();
  }
}

/** `openProtected`; with `undo`, what it changes in `bytes` is cleared in place and put back there. */
async function openWith(
  bytes: Uint8Array,
  opts: VerifyOptions,
  undo?: (() => void)[],
): Promise<Opened> {
  const img = readProtected(bytes, opts.what);
  const checks = new Checks();
  const keyed = !!opts.imageKey;
  if (!FORMAT_VERSIONS.includes(img.version) && !img.container && !img.containerError) {
    checks.add(
      'container.version',
      'container',
      'unknown',
      `the container has version ${img.version}, which this build does not read`,
    );
    return { verdict: decide(checks.list, { tiles: [], keyed }) };
  }
  if (img.damage > 0)
    checks.add(
      'container.magic',
      'container',
      'fail',
      `the container header has ${img.damage} flipped bit(s)`,
    );
  const c = img.container;
  if (!c) {
    checks.add(
      'container.structure',
      'container',
      'fail',
      img.containerError ?? 'the container is unreadable',
    );
    return { verdict: decide(checks.list, { tiles: [], keyed }) };
  }
  const f = c.fields;
  const K = regionSamples(f.containerBytes, img.L);

  // Start everything at once: signatures, the ciphertext digest and, with a key that matches its
  // commitment, the decryption and restoration. Results are reported below in the checks' order.
  const sealing = settle(
    verifySignature(
      opts.resolver,
      'producer',
      'seal',
      'container',
      f.signerKeyId,
      f.sigAlg,
      f.createdAt,
      sealMessage(c.sealedBytes),
      c.sealSignature,
    ),
  );
  const grid = f.tileSide > 0 ? tileGrid(img.g, f.tileSide) : undefined;
  const gridFits = !!grid && grid.count === f.tileCount;
  // Bytes handed over or lent have their container planes cleared in place; otherwise the digest
  // clears them only while it takes its input (no copy), and a copy is masked only for the tiles of a
  // digest that failed.
  const inPlace = !!(opts.consume || undo);
  const masking = gridFits
    ? settleNow(() => {
        if (undo) undo.push(lendContainer(img.data, img.g, K));
        return inPlace ? clearContainer(img.data, img.g, K, img.L) : img.data;
      })
    : undefined;
  const ciphertext =
    masking?.ok === true
      ? settle(
          inPlace
            ? ciphertextDigest(masking.value, f.iv)
            : maskedCiphertextDigest(img.data, img.g, K, img.L, f.iv),
        )
      : undefined;
  const t = c.traceError ? undefined : c.trace;
  const tracing = !t
    ? undefined
    : t.version === 2
      ? settle(verifyTraceV2(opts, c, t))
      : settle(
          verifySignature(
            opts.resolver,
            'cloud',
            'trace',
            'trace',
            t.cloudKeyId,
            t.sigAlg,
            t.tracedAt,
            traceMessage(c.sealedBytes, c.sealSignature, t),
            t.signature,
          ),
        );
  const key = opts.imageKey;
  const expectedKeyLength = f.cipher === CIPHER['AES-128-CTR'] ? 16 : 32;
  const opening = key && key.length === expectedKeyLength ? keysOf(key, c) : undefined;
  const committed = !!opening;
  const restoring = opening ? settle(restore(img, c, K, opening, opts.backend)) : undefined;
  const headerDigestNow = settleNow(() => headerDigest('protected', img.dataset));

  checks.add(
    'container.padding',
    'container',
    img.paddingClean && f.L === img.L ? 'pass' : 'fail',
    img.paddingClean && f.L === img.L
      ? 'the container region holds nothing but the container'
      : 'the container region holds bits outside the container',
  );

  // What the seal does not bind by itself: File Meta and encoding (image.ts, examineFile).
  checks.add(
    'header.meta',
    'header',
    img.metaProblem ? 'fail' : 'pass',
    img.metaProblem ??
      'the File Meta agrees with the data set (SOP Class, SOP Instance, transfer syntax)',
  );
  checks.add(
    'header.encoding',
    'header',
    img.encodingProblem ? 'fail' : 'pass',
    img.encodingProblem
      ? `the file is malformed: ${img.encodingProblem}`
      : 'the file is the canonical encoding of its sealed content, byte for byte',
  );

  // The producer's seal over the container.
  const seal = take(await sealing);
  checks.list.push(...seal.checks);
  const sealSigner = seal.signer;
  const sealTrusted =
    checks.list.at(-1)?.id === 'seal.signature' && checks.list.at(-1)?.result === 'pass';

  // The protected (clear) header.
  const headerOk = equalBytes(take(headerDigestNow), f.protectedHeaderDigest);
  checks.add(
    'header.protected',
    'header',
    headerOk ? 'pass' : 'fail',
    headerOk
      ? 'the clear header and encrypted attributes are as sealed'
      : 'the clear header or the encrypted attributes differ from what was sealed',
  );

  // Ciphertext: one digest; tile by tile only when it fails, to say where.
  const tiles: TileReport[] = [];
  if (!grid || !gridFits || !masking) {
    checks.add('pixels.tiles', 'container', 'fail', 'the tile grid does not fit the image');
  } else {
    const masked = take(masking);
    const ctOk = equalBytes(take(await ciphertext!), f.ciphertextDigest);
    if (!ctOk) {
      const all = inPlace ? masked : maskContainer(masked, img.g, K, img.L);
      tiles.push(...alteredTiles(img, grid, all, f.iv, f.tileTags));
    }
    checks.add(
      'pixels.ciphertext',
      'pixels',
      ctOk ? 'pass' : 'fail',
      ctOk
        ? `the encrypted pixels are as sealed (${grid.count} tiles)`
        : tiles.length > 0
          ? `${tiles.length} of ${grid.count} tiles of encrypted pixels were altered`
          : 'the encrypted pixels differ from what was sealed',
    );
  }

  // The cloud's trace.
  let trace: TraceReport | null = null;
  if (c.traceError) {
    checks.add('trace.structure', 'trace', 'fail', c.traceError);
  } else if (!t || !tracing) {
    checks.add('trace.present', 'trace', 'skipped', 'no cloud has traced this image yet');
  } else {
    const traced = take(await tracing);
    checks.list.push(...traced.checks);
    const cloud = traced.signer;
    const text = traceText(t.traceId);
    trace = {
      id: toHex(t.traceId),
      ...(text ? { text } : {}),
      tracedAt: iso(t.tracedAt),
      keyId: toHex(t.cloudKeyId),
      ...(cloud ? { signer: signerReport(cloud) } : {}),
      ...(t.version === 2
        ? {
            release: {
              redemption: toHex(t.redemptionId),
              root: toHex(t.root),
              leaf: t.leafIndex,
              leaves: t.treeSize,
            },
          }
        : {}),
    };
  }

  const sealReport = {
    createdAt: iso(f.createdAt),
    keyId: toHex(f.signerKeyId),
    ...(sealSigner ? { signer: signerReport(sealSigner) } : {}),
  };
  const disclosure: Verdict['disclosure'] = opening?.attributes ? 'identified' : 'pseudonymised';
  const rest = { tiles, seal: sealReport, trace, keyed, ...(opening ? { disclosure } : {}) };
  if (!key) return { verdict: decide(checks.list, rest) };

  // With the key: commitment first, so a wrong key is told apart from tampering.
  if (!committed || !restoring) {
    if (sealTrusted)
      throw new ZtvError(
        'wrong-key',
        'the image key does not open this image (it does not match the sealed key commitment)',
      );
    checks.add(
      'key.commitment',
      'container',
      'fail',
      'the image key does not match the key commitment',
    );
    return { verdict: decide(checks.list, rest) };
  }
  checks.add(
    'key.commitment',
    'container',
    'pass',
    opening?.attributes
      ? 'the image key matches the sealed key commitment'
      : "the key is the image's pixel key (it matches the sealed key commitment): it opens the pixels, not the identifying attributes",
  );
  const restoredPart = take(await restoring);
  checks.list.push(...restoredPart.checks);
  const restored = restoredPart.restored;
  return { verdict: decide(checks.list, rest), ...(restored ? { restored } : {}) };
}

/** What a key opens: the pixels always; the attributes only when it is the image key K_i. */
interface Opening {
  readonly pixels: Uint8Array;
  readonly attributes?: Uint8Array;
}

/**
 * The keys `key` gives for this image, or undefined when it matches the seal's key commitment in no
 * way. Without `FLAG_PIXEL_KEY` (images sealed before it) K_i opens both, as it always did; with it,
 * the commitment is K_p's: `key` is either K_p (pixels only) or the K_i it derives from.
 */
function keysOf(key: Uint8Array, c: Container): Opening | undefined {
  const f = c.fields;
  const commits = (k: Uint8Array) => equalBytes(keyCommitment(k, f.iv), f.keyCommitment);
  if (!(f.flags & FLAG_PIXEL_KEY))
    return commits(key) ? { pixels: key, attributes: key } : undefined;
  if (commits(key)) return { pixels: key };
  const derived = pixelKey(key);
  return commits(derived) ? { pixels: derived, attributes: key } : undefined;
}

/**
 * Decrypts and restores: the attributes decrypt while the pixels are restored; the fast path of
 * `recoverWords` serves words of 1 or 2 bytes, the general decoder the rest (32-bit samples). With
 * the pixel key only, the pseudonymised header is what comes back, checked as sealed already.
 */
async function restore(
  img: ProtectedImage,
  c: Container,
  K: number,
  keys: Opening,
  backend: CipherBackend | undefined,
): Promise<{ readonly checks: readonly Check[]; readonly restored?: Restored }> {
  const checks = new Checks();
  const f = c.fields;
  const attributes = keys.attributes
    ? decryptAttributes(img.dataset, keys.attributes, f.iv).then(
        (a) => ({ ok: true as const, a }),
        (e: unknown) => {
          if (e instanceof ZtvError) return { ok: false as const, message: e.message };
          throw e;
        },
      )
    : Promise.resolve(undefined);
  // Settled at once: a failure here must not leave the attributes' promise unobserved.
  const decrypting = settle(aesCtr(keys.pixels, f.iv, img.data, backend));
  const attributesDone = settle(attributes);
  const plain = take(await decrypting);
  let pixels: Uint8Array | undefined;
  try {
    const region = { K, L: img.L };
    const params = { T: f.T, k: f.k };
    if (recoversWords(img.g, region, params))
      pixels = recoverWords(plain, img.g, region, params, f.payloadBits);
    else {
      const values = recover(readValues(plain, img.g), img.g, region, params, f.payloadBits);
      pixels = writeValues(plain, img.g, values);
    }
  } catch (e) {
    if (!(e instanceof ZtvError)) throw e;
    checks.add(
      'pixels.restore',
      'pixels',
      'fail',
      `the hidden data cannot be extracted: ${e.message}`,
    );
  }
  if (pixels) {
    const ok = equalBytes(await pixelDigest(img.info, pixels), f.originalPixelDigest);
    checks.add(
      'pixels.original',
      'pixels',
      ok ? 'pass' : 'fail',
      ok
        ? 'the restored pixels are bit-identical to the original'
        : 'the restored pixels differ from the original',
    );
  }
  let original: DataSet | undefined;
  const attrs = take(await attributesDone);
  if (!attrs) {
    // The pixel key: the identifying attributes stay encrypted, and leave with nothing restored.
    original = img.dataset.clone();
    original.delete(T.EncryptedAttributesSequence);
    original.delete(img.info.pixelTag);
    checks.add(
      'attributes.decrypt',
      'attributes',
      'skipped',
      'the identifying attributes stay encrypted: the key opens the pixels only (a de-identified purpose)',
    );
    checks.add(
      'header.original',
      'header',
      'skipped',
      'the original header is not restored: the pseudonymised header was checked against the seal instead',
    );
  } else if (attrs.ok) {
    const clear = img.dataset.clone();
    clear.delete(T.EncryptedAttributesSequence);
    clear.delete(img.info.pixelTag);
    original = reidentify(clear, attrs.a.originals, attrs.a.added);
    checks.add('attributes.decrypt', 'attributes', 'pass', 'the encrypted attributes decrypt');
  } else checks.add('attributes.decrypt', 'attributes', 'fail', attrs.message);
  if (original && attrs) {
    const ok = equalBytes(headerDigest('original', original), f.originalHeaderDigest);
    checks.add(
      'header.original',
      'header',
      ok ? 'pass' : 'fail',
      ok
        ? 'the restored header is identical to the original'
        : 'the restored header differs from the original',
    );
  }
  if (!pixels || !original) return { checks: checks.list };
  const dataset = original;
  dataset.set({
    tag: img.info.pixelTag,
    vr: img.dataset.get(img.info.pixelTag)!.vr,
    value: pixels,
  });
  const sopClassUid = dataset.text(T.SOPClassUID) ?? '';
  const sopInstanceUid = dataset.text(T.SOPInstanceUID) ?? '';
  return {
    checks: checks.list,
    restored: {
      dataset,
      identity: !!attrs,
      info: img.info,
      pixels,
      file: () => writePart10({ sopClassUid, sopInstanceUid }, dataset).bytes,
    },
  };
}

/** Keyless (or keyed) verification only. */
export async function verifyProtected(bytes: Uint8Array, opts: VerifyOptions): Promise<Verdict> {
  return (await openProtected(bytes, opts)).verdict;
}
