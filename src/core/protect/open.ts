/**
 * Verify and open (viewer, auditor): check the container, the producer's seal, the cloud's trace,
 * the protected header and every ciphertext tile — none of which needs a key — then, with the image
 * key, decrypt, undo the data hiding and the de-identification, and check the restored pixels and
 * header against the seal. DESIGN §2 step 5.
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
import { aesCtr, type CipherBackend } from './cipher.ts';
import {
  CIPHER,
  regionSamples,
  sealMessage,
  TILE_TAG_LENGTH,
  traceMessage,
  type Container,
} from './container.ts';
import {
  ciphertextDigest,
  headerDigest,
  keyCommitment,
  maskContainer,
  pixelDigest,
  tileTags,
} from './digests.ts';
import { tileAt, tileGrid, type TileGrid } from './geometry.ts';
import { recover } from './hiding.ts';
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
  /** With the image key, pixels and attributes are decrypted and checked too. */
  readonly imageKey?: Uint8Array;
  readonly backend?: CipherBackend;
  readonly what?: string;
}

export interface Restored {
  /** The original data set, identifying attributes restored, with native pixel data. */
  readonly dataset: DataSet;
  readonly info: PixelInfo;
  /** Native little-endian pixel bytes, bit-identical to the (decoded) original. */
  readonly pixels: Uint8Array;
  /** The restored original as an Explicit VR Little Endian Part 10 file. */
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

async function verifySignature(
  checks: Checks,
  resolver: SignerResolver,
  role: SignerRole,
  idPrefix: string,
  part: Part,
  keyId: Uint8Array,
  sigAlg: number,
  at: number,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<TrustedSigner | undefined> {
  const who = role === 'producer' ? "the producer's seal" : "the cloud's trace";
  const lookup = await resolver.resolve(keyId, role, new Date(at));
  if (!lookup.ok) {
    checks.add(
      `${idPrefix}.signer`,
      part,
      'unknown',
      `${who} signer is not trusted: ${lookup.reason}`,
    );
    return undefined;
  }
  const signer = lookup.signer;
  checks.add(`${idPrefix}.signer`, part, 'pass', `${who} is signed by ${signer.subject}`);
  if (SIG_ALG_BY_CODE[sigAlg] !== signer.key.alg) {
    checks.add(`${idPrefix}.signature`, part, 'fail', `${who} names the wrong signature algorithm`);
    return signer;
  }
  const ok = await signer.key.verify(signature, message);
  checks.add(
    `${idPrefix}.signature`,
    part,
    ok ? 'pass' : 'fail',
    ok ? `${who} signature is valid` : `${who} signature does not verify`,
  );
  return signer;
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
  const img = readProtected(bytes, opts.what);
  const checks = new Checks();
  const keyed = !!opts.imageKey;
  if (img.version !== 1 && !img.container && !img.containerError) {
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
  checks.add(
    'container.padding',
    'container',
    img.paddingClean && f.L === img.L ? 'pass' : 'fail',
    img.paddingClean && f.L === img.L
      ? 'the container region holds nothing but the container'
      : 'the container region holds bits outside the container',
  );

  // The producer's seal over the container.
  const sealSigner = await verifySignature(
    checks,
    opts.resolver,
    'producer',
    'seal',
    'container',
    f.signerKeyId,
    f.sigAlg,
    f.createdAt,
    sealMessage(c.sealedBytes),
    c.sealSignature,
  );
  const sealTrusted =
    checks.list.at(-1)?.id === 'seal.signature' && checks.list.at(-1)?.result === 'pass';

  // The protected (clear) header.
  const headerOk = equalBytes(headerDigest('protected', img.dataset), f.protectedHeaderDigest);
  checks.add(
    'header.protected',
    'header',
    headerOk ? 'pass' : 'fail',
    headerOk
      ? 'the clear header and encrypted attributes are as sealed'
      : 'the clear header or the encrypted attributes differ from what was sealed',
  );

  // Ciphertext: one digest; tile by tile only when it fails, to say where.
  const K = regionSamples(f.containerBytes, img.L);
  const tiles: TileReport[] = [];
  const grid = f.tileSide > 0 ? tileGrid(img.g, f.tileSide) : undefined;
  if (!grid || grid.count !== f.tileCount) {
    checks.add('pixels.tiles', 'container', 'fail', 'the tile grid does not fit the image');
  } else {
    const masked = maskContainer(img.data, img.g, K, img.L);
    const ctOk = equalBytes(await ciphertextDigest(masked, f.iv), f.ciphertextDigest);
    if (!ctOk) tiles.push(...alteredTiles(img, grid, masked, f.iv, f.tileTags));
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
  } else if (!c.trace) {
    checks.add('trace.present', 'trace', 'skipped', 'no cloud has traced this image yet');
  } else {
    const t = c.trace;
    const cloud = await verifySignature(
      checks,
      opts.resolver,
      'cloud',
      'trace',
      'trace',
      t.cloudKeyId,
      t.sigAlg,
      t.tracedAt,
      traceMessage(c.sealedBytes, c.sealSignature, t),
      t.signature,
    );
    const text = traceText(t.traceId);
    trace = {
      id: toHex(t.traceId),
      ...(text ? { text } : {}),
      tracedAt: iso(t.tracedAt),
      keyId: toHex(t.cloudKeyId),
      ...(cloud ? { signer: signerReport(cloud) } : {}),
    };
  }

  const seal = {
    createdAt: iso(f.createdAt),
    keyId: toHex(f.signerKeyId),
    ...(sealSigner ? { signer: signerReport(sealSigner) } : {}),
  };
  const rest = { tiles, seal, trace, keyed };
  if (!opts.imageKey) return { verdict: decide(checks.list, rest) };

  // With the key: commitment first, so a wrong key is told apart from tampering.
  const key = opts.imageKey;
  const expectedKeyLength = f.cipher === CIPHER['AES-128-CTR'] ? 16 : 32;
  const committed =
    key.length === expectedKeyLength && equalBytes(keyCommitment(key, f.iv), f.keyCommitment);
  if (!committed) {
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
    'the image key matches the sealed key commitment',
  );
  const restored = await restore(img, c, K, key, opts.backend, checks);
  return { verdict: decide(checks.list, rest), ...(restored ? { restored } : {}) };
}

async function restore(
  img: ProtectedImage,
  c: Container,
  K: number,
  key: Uint8Array,
  backend: CipherBackend | undefined,
  checks: Checks,
): Promise<Restored | undefined> {
  const f = c.fields;
  // The attributes decrypt (WebCrypto, asynchronous) while the pixels are restored.
  const attributes = decryptAttributes(img.dataset, key, f.iv).then(
    (a) => ({ ok: true as const, a }),
    (e: unknown) => {
      if (e instanceof ZtvError) return { ok: false as const, message: e.message };
      throw e;
    },
  );
  const plain = await aesCtr(key, f.iv, img.data, backend);
  let pixels: Uint8Array | undefined;
  try {
    const marked = readValues(plain, img.g);
    const values = recover(marked, img.g, { K, L: img.L }, { T: f.T, k: f.k }, f.payloadBits);
    pixels = writeValues(plain, img.g, values);
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
  const attrs = await attributes;
  if (attrs.ok) {
    const clear = img.dataset.clone();
    clear.delete(T.EncryptedAttributesSequence);
    clear.delete(img.info.pixelTag);
    original = reidentify(clear, attrs.a.originals, attrs.a.added);
    checks.add('attributes.decrypt', 'attributes', 'pass', 'the encrypted attributes decrypt');
  } else checks.add('attributes.decrypt', 'attributes', 'fail', attrs.message);
  if (original) {
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
  if (!pixels || !original) return undefined;
  const dataset = original;
  dataset.set({
    tag: img.info.pixelTag,
    vr: img.dataset.get(img.info.pixelTag)!.vr,
    value: pixels,
  });
  const sopClassUid = dataset.text(T.SOPClassUID) ?? '';
  const sopInstanceUid = dataset.text(T.SOPInstanceUID) ?? '';
  return {
    dataset,
    info: img.info,
    pixels,
    file: () => writePart10({ sopClassUid, sopInstanceUid }, dataset).bytes,
  };
}

/** Keyless (or keyed) verification only. */
export async function verifyProtected(bytes: Uint8Array, opts: VerifyOptions): Promise<Verdict> {
  return (await openProtected(bytes, opts)).verdict;
}
