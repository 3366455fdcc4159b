/**
 * Protect (producer hospital): decode the source, de-identify the header into encrypted attributes,
 * reserve room for the container by reversible data hiding, encrypt everything else with AES-CTR,
 * then seal: write the signed container into the reserved low bits (docs/protection.md, "Overview",
 * steps 1–4).
 */
import { concatBytes, randomBytes, utf8 } from '../bytes.ts';
import { hmacSha256 } from '../crypto/hash.ts';
import { SIG_ALG_CODE, type SigningKey } from '../crypto/keys.ts';
import type { DataSet } from '../dicom/dataset.ts';
import { deidentify, newUid } from '../dicom/deidentify.ts';
import { parseDicom, type ParsedDicom } from '../dicom/parse.ts';
import {
  decodeNestedPixelData,
  nativePixelVr,
  readPixelData,
  stateDecodedForm,
  type NativePixels,
} from '../dicom/pixels.ts';
import { T } from '../dicom/tags.ts';
import { writePart10 } from '../dicom/write.ts';
import { assertInput, ZtvError } from '../errors.ts';
import { encryptAttributes } from './attributes.ts';
import { aesCtr, pixelKey, type CipherBackend } from './cipher.ts';
import {
  CIPHER,
  containerLength,
  encodeSealed,
  encodeTraceSlot,
  FLAG_LOSSY_SOURCE,
  FLAG_PIXEL_KEY,
  FORMAT_VERSION,
  regionSamples,
  sealMessage,
  writeRegionBits,
  type SealedFields,
} from './container.ts';
import {
  ciphertextDigest,
  headerDigest,
  keyCommitment,
  clearContainer,
  pixelDigest,
  tileTagsAsync,
} from './digests.ts';
import { geometryOf, tileGrid, type Geometry } from './geometry.ts';
import {
  estimateCapacity,
  fitsRange,
  Hider,
  type HidingParams,
  type Prepared,
  type Region,
} from './hiding.ts';
import { readValues, type Values } from './samples.ts';

export interface ProtectOptions {
  /** The producer hospital's sealing key (only its algorithm, public key and signing are used). */
  readonly signer: Pick<SigningKey, 'alg' | 'publicKey' | 'sign'>;
  /** The producer's secret for pseudonymous patient and physician references (≥ 16 bytes). */
  readonly pseudonymKey: Uint8Array;
  /** AES key size (default 256). */
  readonly keyBits?: 128 | 256;
  readonly backend?: CipherBackend;
  readonly now?: Date;
  /** Smallest tile side tried for tamper localization (default 32 units). */
  readonly minTileSide?: number;
  /** Name used in error messages. */
  readonly what?: string;
  /**
   * Container format: 2 (default; one cloud signature per release) or 1 (one per image). An image
   * too small for a v2 container gets a v1 one when the format is not given (docs/protection.md).
   */
  readonly format?: 1 | 2;
  /**
   * Whether the pixels get a key of their own, K_p = `pixelKey(K_i)` (default true), so that a
   * ticket for a de-identified purpose can release the pixels without the identity. False seals an
   * image as every image was sealed before (the tests' fixtures of older images).
   */
  readonly pixelKey?: boolean;
}

export interface ProtectReport {
  readonly sourceTransferSyntax: string;
  readonly decodedFrom?: string;
  readonly lossySource: boolean;
  readonly samples: number;
  /** The container format written: 2, or 1 for an image too small for a v2 container. */
  readonly format: number;
  readonly containerBytes: number;
  /** Container bit planes and region size. */
  readonly L: number;
  readonly K: number;
  readonly T: number;
  readonly k: number;
  readonly tileSide: number;
  readonly tiles: number;
  readonly payloadBits: number;
  /** Estimated hiding capacity (bits) at the chosen parameters. */
  readonly capacityBits: number;
  readonly warnings: readonly string[];
}

export interface Protected {
  /** The protected Part 10 file (Explicit VR Little Endian, uncompressed). */
  readonly bytes: Uint8Array;
  /**
   * The image key K_i: the only secret that opens the whole image. With `pixelKey` (the default),
   * `pixelKey(K_i)` opens its pixels and pseudonymised header only.
   */
  readonly imageKey: Uint8Array;
  /** SOP Instance UID of the protected file (the original travels encrypted). */
  readonly sopInstanceUid: string;
  readonly report: ProtectReport;
}

/** Thresholds tried, gentlest first; the large ones serve 32-bit samples (float bit patterns). */
const T_CANDIDATES = [
  1,
  2,
  3,
  4,
  6,
  8,
  12,
  16,
  24,
  32,
  48,
  64,
  96,
  128,
  256,
  512,
  1024,
  4096,
  ...Array.from({ length: 19 }, (_, i) => 2 ** (13 + i)),
];
const K_CANDIDATES = [1, 2, 3, 4, 6, 8];

interface Plan {
  readonly side: number;
  readonly region: Region;
  readonly params: HidingParams;
  readonly containerBytes: number;
  readonly tiles: number;
  /** The pixel bytes with the marked values (R's unchanged, the payload hidden in the others). */
  readonly hidden: Uint8Array;
  readonly payloadBits: number;
  readonly capacity: number;
}

/** Tile sides to try, smallest first, ending with one tile per frame. */
function tileSides(g: Geometry, min: number): number[] {
  const out: number[] = [];
  const whole = Math.max(g.rows, g.cols);
  for (let s = min; s < whole; s *= 2) out.push(s);
  out.push(Math.max(whole, 1));
  return out;
}

/**
 * Finds the most tiles, then the fewest container planes and the gentlest hiding parameters, that
 * carry the container; embeds with them.
 */
function plan(
  data: Uint8Array,
  values: Values,
  g: Geometry,
  minTileSide: number,
  version: number,
): Plan {
  const hider = new Hider(values, g);
  const maxL = Math.max(1, Math.min(8, g.bitsStored - 2));
  const needs = new Map<string, Prepared>();
  const best = { need: Infinity, capacity: 0, fits: false };
  for (const side of tileSides(g, minTileSide)) {
    const grid = tileGrid(g, side);
    const bytes = containerLength(grid.count, version);
    for (let L = 1; L <= maxL; L++) {
      const K = regionSamples(bytes, L);
      best.need = Math.min(best.need, K * L + 128);
      if ((K > g.count / 4 && L < maxL) || K >= g.count) continue;
      best.fits = true;
      for (const k of K_CANDIDATES) {
        for (const T of T_CANDIDATES) {
          const params = { T, k };
          if (!fitsRange(g, params)) break;
          const capacity = estimateCapacity(hider.histogram(K), params);
          const floor = K * L + 128;
          best.capacity = Math.max(capacity, best.capacity);
          if (capacity < floor * 1.02) continue;
          if (capacity < (floor + hider.mapBits(params)) * 1.02) continue;
          // The exact payload (with its location map) depends on K, L and the margin only: built
          // once, to size it and then to embed it.
          const key = `${K}:${L}:${T * (2 ** k - 1)}`;
          let prepared = needs.get(key);
          if (prepared === undefined) needs.set(key, (prepared = hider.prepare({ K, L }, params)));
          if (capacity < prepared.bits * 1.02) continue;
          const hidden = hider.embed(data, { K, L }, params, prepared);
          if (hidden)
            return {
              side,
              region: { K, L },
              params,
              containerBytes: bytes,
              tiles: grid.count,
              hidden,
              payloadBits: prepared.bits,
              capacity,
            };
        }
      }
    }
  }
  // When even the fewest tiles in the most planes need a region R larger than the image, no hiding
  // capacity was ever estimated: say so, with the region's size, rather than leave "about 0" bare.
  const smallest = containerLength(tileGrid(g, tileSides(g, minTileSide).at(-1)!).count, version);
  const minK = regionSamples(smallest, maxL);
  throw new ZtvError(
    'capacity',
    `the image cannot carry the protection container: it needs at least ${best.need} bits of ` +
      `hiding capacity (a ${smallest}-byte container) and offers about ` +
      `${Math.floor(best.capacity)} (${g.count} samples of ${g.bitsStored} bits` +
      (best.fits
        ? ')'
        : `: the container region alone, ${minK} samples in ${maxL} bit planes, is larger than the image)`),
    {
      neededBits: best.need,
      availableBits: Math.floor(best.capacity),
      samples: g.count,
      ...(best.fits ? {} : { regionSamples: minK, planes: maxL }),
    },
  );
}

/**
 * The original data set as it will be restored: decoded pixel form, no encapsulation, nested
 * encapsulated pixel data (icons) decoded too.
 */
async function decodedOriginal(
  ds: DataSet,
  px: NativePixels,
  transferSyntax: string,
): Promise<{ original: DataSet; warnings: string[] }> {
  const out = ds.clone();
  out.delete(px.info.pixelTag);
  stateDecodedForm(out, px);
  const warnings = await decodeNestedPixelData(out, transferSyntax);
  return { original: out, warnings };
}

function pseudonym(key: Uint8Array, kind: string, ...parts: (string | undefined)[]): Uint8Array {
  if (!parts[parts.length - 1]) return new Uint8Array(16);
  return hmacSha256(key, utf8(`${kind}\0${parts.map((p) => p ?? '').join('\0')}`)).slice(0, 16);
}

export async function protect(input: Uint8Array, opts: ProtectOptions): Promise<Protected> {
  return protectParsed(parseDicom(input, opts.what ?? 'the image'), opts);
}

/**
 * `protect` for an instance the caller has parsed already (the producer reads its attributes to
 * record it): the file is parsed once per hop. `parsed` is not changed.
 */
export async function protectParsed(parsed: ParsedDicom, opts: ProtectOptions): Promise<Protected> {
  assertInput(opts.pseudonymKey.length >= 16, 'the pseudonym key must be at least 16 bytes');
  const keyBits = opts.keyBits ?? 256;
  assertInput(keyBits === 128 || keyBits === 256, 'keyBits must be 128 or 256');
  const what = opts.what ?? 'the image';
  const px = await readPixelData(parsed);
  const g = geometryOf(px.info);
  const { original, warnings: nestedWarnings } = await decodedOriginal(
    parsed.dataset,
    px,
    parsed.transferSyntax,
  );

  // 1. Reserve room before encryption. The values (in scratch memory) serve the synchronous
  // planning only: `plan` returns the marked pixel bytes.
  const values = readValues(px.data, g, 'protect.values');
  assertInput(
    opts.format === undefined || opts.format === 1 || opts.format === 2,
    'the container format is 1 or 2',
  );
  const minSide = opts.minTileSide ?? 32;
  let version: number = opts.format ?? FORMAT_VERSION;
  let p: Plan;
  try {
    p = plan(px.data, values, g, minSide, version);
  } catch (e) {
    // Too small for a v2 container (its trace slot holds an inclusion path): a v1 one may fit.
    if (opts.format !== undefined || !(e instanceof ZtvError) || e.code !== 'capacity') throw e;
    version = 1;
    p = plan(px.data, values, g, minSide, version);
  }
  const hidden = p.hidden;

  // 2. Encrypt everything; the container overwrites R's low planes afterwards.
  const imageKey = randomBytes(keyBits / 8);
  const iv = concatBytes(randomBytes(8), new Uint8Array(8));
  const split = opts.pixelKey ?? true;
  const pixelsKey = split ? pixelKey(imageKey) : imageKey;
  const ct = await aesCtr(pixelsKey, iv, hidden, opts.backend);

  // Header confidentiality: originals of every changed attribute, encrypted under the image key.
  const deid = deidentify(original);
  const clear = deid.clear;
  const added = [...deid.added];
  const sopClassUid = original.text(T.SOPClassUID) ?? parsed.meta.text(T.MediaStorageSOPClassUID);
  if (!sopClassUid) throw new ZtvError('unsupported', `${what} has no SOP Class UID (0008,0016)`);
  const oldSop = original.text(T.SOPInstanceUID);
  const sopInstanceUid = (oldSop && deid.uidMap.get(oldSop)) || newUid();
  if (!oldSop) {
    clear.setText(T.SOPInstanceUID, 'UI', sopInstanceUid);
    added.push(T.SOPInstanceUID);
  }
  if (!original.has(T.SOPClassUID)) {
    clear.setText(T.SOPClassUID, 'UI', sopClassUid);
    added.push(T.SOPClassUID);
  }
  clear.set(await encryptAttributes(deid.originals, added, imageKey, iv));

  // 3. Seal.
  // The ciphertext is ours: its container planes are cleared in place (the container overwrites
  // every one of them below), not in a copy.
  const masked = clearContainer(ct, g, p.region.K, p.region.L);
  const tags = await tileTagsAsync(masked, g, tileGrid(g, p.side), iv);
  const fields: SealedFields = {
    version,
    flags: (px.lossy ? FLAG_LOSSY_SOURCE : 0) | (split ? FLAG_PIXEL_KEY : 0),
    containerBytes: p.containerBytes,
    L: p.region.L,
    k: p.params.k,
    cipher: keyBits === 128 ? CIPHER['AES-128-CTR'] : CIPHER['AES-256-CTR'],
    sigAlg: SIG_ALG_CODE[opts.signer.alg],
    T: p.params.T,
    payloadBits: p.payloadBits,
    tileSide: p.side,
    tileCount: p.tiles,
    iv,
    createdAt: (opts.now ?? new Date()).getTime(),
    patientRef: pseudonym(
      opts.pseudonymKey,
      'patient',
      original.text(0x00100021), // Issuer of Patient ID
      original.text(T.PatientID),
    ),
    physicianRef: pseudonym(
      opts.pseudonymKey,
      'physician',
      original.text(T.ReferringPhysicianName),
    ),
    signerKeyId: opts.signer.publicKey.keyId,
    originalPixelDigest: await pixelDigest(px.info, px.data),
    originalHeaderDigest: headerDigest('original', original),
    protectedHeaderDigest: headerDigest('protected', clear),
    ciphertextDigest: await ciphertextDigest(masked, iv),
    // K_p's commitment commits K_i too: another K_i giving the same K_p is an HKDF collision.
    keyCommitment: keyCommitment(pixelsKey, iv),
    tileTags: tags,
  };
  const sealed = encodeSealed(fields);
  const signature = await opts.signer.sign(sealMessage(sealed));
  const container = concatBytes(sealed, signature, encodeTraceSlot(undefined, version));
  const regionBits = p.region.K * p.region.L;
  const padded = new Uint8Array(Math.ceil(regionBits / 8));
  padded.set(container);
  writeRegionBits(ct, g, p.region.L, padded, 0, regionBits);
  if (split) pixelsKey.fill(0);

  clear.set({ tag: px.info.pixelTag, vr: nativePixelVr(px.info), value: ct });
  const file = writePart10({ sopClassUid, sopInstanceUid }, clear);
  return {
    bytes: file.bytes,
    imageKey,
    sopInstanceUid,
    report: {
      sourceTransferSyntax: parsed.transferSyntax,
      ...(px.decodedFrom ? { decodedFrom: px.decodedFrom } : {}),
      lossySource: px.lossy,
      samples: g.count,
      format: version,
      containerBytes: p.containerBytes,
      L: p.region.L,
      K: p.region.K,
      T: p.params.T,
      k: p.params.k,
      tileSide: p.side,
      tiles: p.tiles,
      payloadBits: p.payloadBits,
      capacityBits: Math.floor(p.capacity),
      warnings: [...parsed.warnings, ...px.warnings, ...nestedWarnings],
    },
  };
}
