/**
 * Reading a protected image: parse the file, check its pixel data is native and complete, find the
 * container by its magic and read it out of the reserved low bits. Shared by trace, inspect, verify
 * and open.
 */
import type { DataSet } from '../dicom/dataset.ts';
import { parseDicom, type ParsedDicom } from '../dicom/parse.ts';
import { pixelByteLength, pixelInfoOf, type PixelInfo } from '../dicom/pixels.ts';
import { TS } from '../dicom/tags.ts';
import { ZtvError } from '../errors.ts';
import {
  decodeContainer,
  FIXED_LENGTH,
  FORMAT_VERSION,
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
}

/**
 * Parses `bytes` and reads the container. The pixel data (`data`) is a view into `bytes`, not a
 * copy: callers read it, and leave `bytes` unchanged while they use the image (open may clear the
 * container planes in place when its caller hands the bytes over, see `VerifyOptions.consume`).
 */
export function readProtected(bytes: Uint8Array, what = 'the image'): ProtectedImage {
  const parsed = parseDicom(bytes, what, { viewPixelData: true });
  if (parsed.transferSyntax !== TS.ExplicitLittle)
    throw new ZtvError(
      'not-protected',
      `${what} is not a protected image: protected images are Explicit VR Little Endian, this one is ${parsed.transferSyntax}`,
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
  const base = { parsed, dataset: parsed.dataset, info, g, data, L, damage, version };
  if (version !== FORMAT_VERSION) return { ...base, paddingClean: true };
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
