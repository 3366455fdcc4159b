/**
 * Messages between the viewer and its decode workers. The workers get the federation's trust material
 * (they verify every seal and trace up to the pinned root themselves) and the ticket's key part with the
 * device's non-extractable decryption key: image keys are opened inside the workers and never come
 * back. What comes back is the verdict, the display-ready frames (transferred, not copied), the
 * restored header for the tag browser and, on request, the auditor's view of a served instance.
 */
import type { FlattenedJWS } from 'jose';
import type { ContainerReport } from '../../core/protect/inspect.ts';
import type { Verdict } from '../../core/protect/verdict.ts';
import type { DisplayMeta } from './display.ts';

/** The federation's trust as the hospital publishes it (PEM), and the root fingerprint the viewer pinned. */
export interface TrustBundle {
  readonly root: string;
  readonly intermediates: readonly string[];
  readonly organisations: readonly string[];
  readonly crls: readonly string[];
  readonly trustGroup: FlattenedJWS;
  /** SHA-256 (hex) of the root certificate's DER: the workers refuse any other root. */
  readonly rootSha256: string;
}

export type PixelKind = 'int16' | 'uint16' | 'float32' | 'uint8';

export interface FrameOut {
  readonly pixels: ArrayBuffer;
  readonly kind: PixelKind;
  readonly min: number;
  readonly max: number;
}

/** One row of the restored header, for the tag browser. */
export interface TagRow {
  readonly tag: string;
  readonly vr: string;
  readonly name: string;
  readonly value: string;
  readonly depth: number;
}

/** One certificate of a signer's chain, as the auditor view shows it. */
export interface CertificateInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** SHA-256 of the DER (hex). */
  readonly sha256: string;
  /** The organisation role and the trust-group member id, for organisation certificates. */
  readonly role?: string;
  readonly member?: string;
}

/** A signer's chain, leaf first, with the result of validating it now. */
export interface ChainReport {
  readonly keyId: string;
  readonly status: 'valid' | 'refused';
  /** Why the chain is refused, or what it was validated against. */
  readonly detail: string;
  readonly certificates: readonly CertificateInfo[];
}

export type WorkerRequest =
  | { readonly kind: 'trust'; readonly id: number; readonly trust: TrustBundle }
  | {
      /** Opens a ticket's key part (compact JWS) with the device's decryption key, in the worker. */
      readonly kind: 'ticket';
      readonly id: number;
      readonly keys: string;
      readonly decryptionKey: CryptoKey;
      /** The device certificate's SHA-256 thumbprint: the audience the key part must name. */
      readonly deviceId: string;
    }
  | {
      /**
       * Opens a served instance. The bytes are lent (transfer them): the worker opens them in place
       * and hands them back unchanged with its answer, so that nobody copies half a megabyte.
       */
      readonly kind: 'open';
      readonly id: number;
      readonly ref: string;
      readonly bytes: ArrayBuffer;
    }
  | {
      /** The auditor's view: container contents and signer chains; needs no image key. */
      readonly kind: 'inspect';
      readonly id: number;
      readonly ref: string;
      readonly bytes: ArrayBuffer;
    }
  | { readonly kind: 'forget'; readonly id: number };

/**
 * Sent once by each worker, unasked, after the first open of its warm-up (job.ts `warmUp`): the
 * synthetic image's answer posted as a real image's is, its buffers transferred, because V8 discards
 * a worker's optimised typed-array code at the first such transfer. Not an answer to any request.
 */
export interface WarmedNotice {
  readonly kind: 'warmed';
  /** The synthetic image's verdict status ("verified" when the build is healthy). */
  readonly status: string;
  /** The transferred buffers (the synthetic container and display frame), of no further use. */
  readonly buffers: readonly ArrayBuffer[];
}

export type WorkerResponse =
  | { readonly kind: 'ok'; readonly id: number }
  | {
      readonly kind: 'ticket-opened';
      readonly id: number;
      readonly tid: string;
      /** The images whose keys this worker now holds. */
      readonly images: readonly string[];
      readonly expiresAt: number;
    }
  | {
      readonly kind: 'opened';
      readonly id: number;
      readonly ref: string;
      readonly verdict: Verdict;
      readonly meta?: DisplayMeta;
      readonly frames: readonly FrameOut[];
      readonly header: readonly TagRow[];
      /** Milliseconds the worker spent, for the benchmark. */
      readonly ms: number;
      /** The bytes the open request lent, handed back exactly as they were sent (transferred). */
      readonly served: ArrayBuffer;
    }
  | {
      readonly kind: 'inspected';
      readonly id: number;
      readonly ref: string;
      readonly container: ContainerReport;
      readonly seal?: ChainReport;
      readonly trace?: ChainReport;
    }
  | {
      readonly kind: 'failed';
      readonly id: number;
      readonly ref?: string;
      readonly code: string;
      readonly message: string;
      /** An open request's bytes, handed back as they were (absent when the worker itself failed). */
      readonly served?: ArrayBuffer;
    };
