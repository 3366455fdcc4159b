/**
 * Reading a protected image: parse the file, check its pixel data is native and complete, find the
 * container by its magic and read it out of the reserved low bits. Shared by trace, inspect, verify
 * and open.
 */
import type { DataSet } from '../dicom/dataset.ts';
import { parseDicom, readsAsExplicitLittle, type ParsedDicom } from '../dicom/parse.ts';
import { pixelByteLength, pixelInfoOf, type PixelInfo } from '../dicom/pixels.ts';
import { T, TS } from '../dicom/tags.ts';
import { part10Difference } from '../dicom/write.ts';
import { ZtvError } from '../errors.ts';
import {
  decodeContainer,
  FIXED_LENGTH,
  FORMAT_VERSIONS,
  locateContainer,
  peekContainerBytes,
  readRegionBits,
  regionSamples,
  type Container,
} from './container.ts';
import { geometryOf, type Geometry } from './geometry.ts';

export interface ProtectedImage {
  readonly parsed: ParsedDicom;
  readonly dataset: DataSet;
  readonly info: PixelInfo;
  readonly g: Geometry;
  /** The stored pixel bytes (ciphertext plus container), exactly pixelByteLength(info) long. */
  readonly data: Uint8Array;
  /** Container bit planes, and how many bits of magic/L byte were damaged (0 when intact). */
  readonly L: number;
  readonly damage: number;
  readonly version: number;
  /** The container, or why it could not be read (then the image is tampered or unsupported). */
  readonly container?: Container;
  readonly containerError?: string;
  /** Container bits beyond its last byte, up to the end of the region: must be zero. */
  readonly paddingClean: boolean;
  /** Where the File Meta disagrees with the data set, in words (undefined when it agrees). */
  readonly metaProblem?: string;
  /** Where the file is not the canonical encoding of its data set, in words (undefined when it is). */
  readonly encodingProblem?: string;
}

/**
 * Parses `bytes` and reads the container. The pixel data (`data`) is a view into `bytes`, not a
 * copy: callers read it, and leave `bytes` unchanged while they use the image (open may clear the
 * container planes in place when its caller hands the bytes over, see `VerifyOptions.consume`).
 */
export function readProtected(bytes: Uint8Array, what = 'the image'): ProtectedImage {
  const parsed = parseDicom(bytes, what, { viewPixelData: true });
  // A Transfer Syntax UID read as Explicit VR Little Endian anyway (a damaged one) is reported in
  // the verdict (metaProblem); one that changes how the data set reads is not a protected image.
  if (!readsAsExplicitLittle(parsed.transferSyntax) || !parsed.hasFileMeta)
    throw new ZtvError(
      'not-protected',
      `${what} is not a protected image: protected images are Part 10 files in Explicit VR Little Endian, this one is ${parsed.hasFileMeta ? parsed.transferSyntax : 'a bare data set'}`,
    );
  const info = pixelInfoOf(parsed.dataset);
  const el = parsed.dataset.get(info.pixelTag);
  if (!el?.value)
    throw new ZtvError(
      'not-protected',
      `${what} is not a protected image: its pixel data is encapsulated`,
    );
  const want = pixelByteLength(info);
  if (el.value.length < want)
    throw new ZtvError(
      'truncated',
      `${what} is truncated: its pixel data holds ${el.value.length} of ${want} bytes`,
    );
  const data = el.value.length === want ? el.value : el.value.subarray(0, want);
  let g: Geometry;
  try {
    g = geometryOf(info);
  } catch {
    throw new ZtvError(
      'not-protected',
      `${what} is not a protected image: its pixel format cannot be`,
    );
  }
  const located = locateContainer(data, g);
  if (!located)
    throw new ZtvError('not-protected', `${what} carries no protection container in its pixels`);
  const { L, damage } = located;
  const head = readRegionBits(data, g, L, 0, FIXED_LENGTH * 8);
  const { version, containerBytes } = peekContainerBytes(head);
  const base = {
    parsed,
    dataset: parsed.dataset,
    info,
    g,
    data,
    L,
    damage,
    version,
    ...examineFile(bytes, parsed, el.value, want),
  };
  if (!FORMAT_VERSIONS.includes(version)) return { ...base, paddingClean: true };
  const maxBytes = Math.floor((g.count * L) / 8);
  if (containerBytes < FIXED_LENGTH || containerBytes > maxBytes)
    return {
      ...base,
      paddingClean: true,
      containerError: `the container announces ${containerBytes} bytes, outside what the image can hold`,
    };
  const raw = readRegionBits(data, g, L, 0, containerBytes * 8);
  const regionBits = regionSamples(containerBytes, L) * L;
  const padding = readRegionBits(data, g, L, containerBytes * 8, regionBits - containerBytes * 8);
  const paddingClean = padding.every((b) => b === 0);
  try {
    return { ...base, container: decodeContainer(raw), paddingClean };
  } catch (e) {
    if (e instanceof ZtvError) return { ...base, paddingClean, containerError: e.message };
    throw e;
  }
}

/**
 * What the seal cannot bind by itself: the File Meta must agree with the data set (SOP Class and
 * Instance UID, transfer syntax), and the file must be exactly the encoding the producer writes —
 * zero preamble, our File Meta, every element in canonical Explicit VR Little Endian (valid VRs,
 * zero reserved bytes, defined lengths), pixel data of the image's exact length with a zero pad
 * byte. Every byte outside the pixel data is then a function of the sealed header, and every bit of
 * the pixel data is covered by the ciphertext digest and the container (docs/protection.md).
 */
function examineFile(
  bytes: Uint8Array,
  parsed: ParsedDicom,
  pixelValue: Uint8Array,
  want: number,
): { metaProblem?: string; encodingProblem?: string } {
  const ds = parsed.dataset;
  const meta: string[] = [];
  const sopClassUid = ds.text(T.SOPClassUID) ?? '';
  const sopInstanceUid = ds.text(T.SOPInstanceUID) ?? '';
  if (parsed.meta.text(T.MediaStorageSOPClassUID) !== sopClassUid)
    meta.push("Media Storage SOP Class UID (0002,0002) is not the data set's SOP Class UID");
  if (parsed.meta.text(T.MediaStorageSOPInstanceUID) !== sopInstanceUid)
    meta.push("Media Storage SOP Instance UID (0002,0003) is not the data set's SOP Instance UID");
  if (parsed.transferSyntax !== TS.ExplicitLittle)
    meta.push(
      'Transfer Syntax UID (0002,0010) does not name Explicit VR Little Endian, the encoding of the data set',
    );
  const encoding: string[] = [];
  const padded = want + (want & 1);
  if (pixelValue.length !== padded || (want & 1 && pixelValue[want] !== 0))
    encoding.push(
      `the pixel data holds ${pixelValue.length} bytes where the image needs ${want}${want & 1 ? ' and a zero pad byte' : ''}`,
    );
  const at = part10Difference(bytes, { sopClassUid, sopInstanceUid }, ds);
  if (at >= 0)
    encoding.push(
      at < 128
        ? `its preamble is not zero (byte ${at})`
        : `it is not the canonical encoding the producer writes: it differs at byte ${at}`,
    );
  for (const w of parsed.warnings) if (/invalid VR|stray/.test(w)) encoding.push(w);
  return {
    ...(meta.length ? { metaProblem: meta.join('; ') } : {}),
    ...(encoding.length ? { encodingProblem: encoding.join('; ') } : {}),
  };
}
