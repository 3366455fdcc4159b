/** Inspect: the container's clear contents, for operators and auditors; needs no key and no trust. */
import { toHex } from '../bytes.ts';
import { SIG_ALG_BY_CODE } from '../crypto/keys.ts';
import { CIPHER, FLAG_LOSSY_SOURCE, FLAG_PIXEL_KEY, regionSamples } from './container.ts';
import { readProtected, type ProtectedImage } from './image.ts';

export interface ContainerReport {
  readonly version: number;
  readonly intact: boolean;
  readonly problem?: string;
  readonly layout?: {
    readonly planes: number;
    readonly regionSamples: number;
    readonly containerBytes: number;
    readonly hiding: {
      readonly threshold: number;
      readonly bitsPerSample: number;
      readonly payloadBits: number;
    };
    readonly tiles: { readonly side: number; readonly count: number };
  };
  readonly seal?: {
    readonly createdAt: string;
    readonly cipher: string;
    readonly signatureAlgorithm: string;
    readonly signerKeyId: string;
    readonly lossySource: boolean;
    /** The pixels have a key of their own (K_p): a ticket may release them without the identity. */
    readonly pixelKey: boolean;
    readonly patientRef: string;
    readonly physicianRef: string;
    readonly digests: Record<string, string>;
  };
  readonly trace?: {
    readonly id: string;
    readonly tracedAt: string;
    readonly signatureAlgorithm: string;
    readonly cloudKeyId: string;
    /** v2: the release (redemption id, tree root) and this image's place in its tree. */
    readonly release?: {
      readonly redemption: string;
      readonly root: string;
      readonly leaf: number;
      readonly leaves: number;
    };
  } | null;
}

export function inspectProtected(bytes: Uint8Array, what?: string): ContainerReport {
  return inspectImage(readProtected(bytes, what));
}

/** The report of an image read already (`readProtected`): the cloud reads an upload once. */
export function inspectImage(img: ProtectedImage): ContainerReport {
  const c = img.container;
  if (!c)
    return {
      version: img.version,
      intact: false,
      problem: img.containerError ?? `container version ${img.version} is not supported`,
    };
  const f = c.fields;
  const cipher =
    Object.entries(CIPHER).find(([, v]) => v === f.cipher)?.[0] ?? `unknown (${f.cipher})`;
  return {
    version: f.version,
    intact: img.damage === 0 && img.paddingClean,
    layout: {
      planes: f.L,
      regionSamples: regionSamples(f.containerBytes, f.L),
      containerBytes: f.containerBytes,
      hiding: { threshold: f.T, bitsPerSample: f.k, payloadBits: f.payloadBits },
      tiles: { side: f.tileSide, count: f.tileCount },
    },
    seal: {
      createdAt: new Date(f.createdAt).toISOString(),
      cipher,
      signatureAlgorithm: SIG_ALG_BY_CODE[f.sigAlg] ?? `unknown (${f.sigAlg})`,
      signerKeyId: toHex(f.signerKeyId),
      lossySource: (f.flags & FLAG_LOSSY_SOURCE) !== 0,
      pixelKey: (f.flags & FLAG_PIXEL_KEY) !== 0,
      patientRef: toHex(f.patientRef),
      physicianRef: toHex(f.physicianRef),
      digests: {
        originalPixels: toHex(f.originalPixelDigest),
        originalHeader: toHex(f.originalHeaderDigest),
        protectedHeader: toHex(f.protectedHeaderDigest),
        ciphertext: toHex(f.ciphertextDigest),
        keyCommitment: toHex(f.keyCommitment),
      },
    },
    trace: c.trace
      ? {
          id: toHex(c.trace.traceId),
          tracedAt: new Date(c.trace.tracedAt).toISOString(),
          signatureAlgorithm: SIG_ALG_BY_CODE[c.trace.sigAlg] ?? `unknown (${c.trace.sigAlg})`,
          cloudKeyId: toHex(c.trace.cloudKeyId),
          ...(c.trace.version === 2
            ? {
                release: {
                  redemption: toHex(c.trace.redemptionId),
                  root: toHex(c.trace.root),
                  leaf: c.trace.leafIndex,
                  leaves: c.trace.treeSize,
                },
              }
            : {}),
        }
      : null,
  };
}
