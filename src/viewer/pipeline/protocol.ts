/**
 * Messages between the viewer and its decode workers. Image keys go to the workers and never come
 * back; what comes back is the verdict, the display-ready frames (transferred, not copied) and the
 * restored header for the tag browser.
 */
import type { Verdict } from '../../core/protect/verdict.ts';
import type { DisplayMeta } from './display.ts';

/** Public keys (SPKI PEM) the workers trust for seals and traces, with the names to show. */
export interface TrustBundle {
  readonly producers: readonly { readonly pem: string; readonly subject: string }[];
  readonly clouds: readonly { readonly pem: string; readonly subject: string }[];
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

export type WorkerRequest =
  | { readonly kind: 'trust'; readonly id: number; readonly trust: TrustBundle }
  | {
      readonly kind: 'keys';
      readonly id: number;
      readonly keys: readonly { readonly ref: string; readonly key: Uint8Array }[];
    }
  | {
      readonly kind: 'open';
      readonly id: number;
      readonly ref: string;
      readonly bytes: ArrayBuffer;
    }
  | { readonly kind: 'forget'; readonly id: number };

export type WorkerResponse =
  | { readonly kind: 'ok'; readonly id: number }
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
    }
  | {
      readonly kind: 'failed';
      readonly id: number;
      readonly ref?: string;
      readonly code: string;
      readonly message: string;
    };
