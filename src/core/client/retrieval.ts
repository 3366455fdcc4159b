/**
 * A retrieval's answer taken apart — the cloud's sealed frames fetched and opened in order, the
 * multipart/related body inside them cut into instances, the stream's end checked — as one function
 * that runs in the page or in a worker (the viewer's stream worker, `src/viewer/pipeline/stream.ts`),
 * and the failures it may end with written as plain data and read back, so that a failure met in a
 * worker is the same error in the page (the session's refusals, the party's answers, a cut transport).
 */
import { ZtvError, type ErrorCode } from '../errors.ts';
import { readMultipart } from '../multipart.ts';
import {
  FrameReader,
  RemoteError,
  SessionError,
  type SessionRefusal,
  type StreamGrant,
} from '../session/protocol.ts';
import { HttpFailure, NetworkFailure } from './http.ts';
import { fetchFrames } from './sessions.ts';

export interface Retrieved {
  readonly id: string;
  readonly bytes: Uint8Array;
}

/**
 * The instances of the cloud's multipart/related answer, each with its Content-Length (a part
 * without one, or a body that ends early, is refused), named by its Content-Location.
 */
async function* instancesOf(frames: AsyncIterable<Uint8Array>): AsyncGenerator<Retrieved> {
  for await (const part of readMultipart(frames, {
    what: 'the retrieval',
    malformed: 'integrity',
    requireLength: true,
  })) {
    const id = /\/instances\/([0-9a-f-]+)/.exec(part.headers['content-location'] ?? '')?.[1] ?? '';
    yield { id, bytes: part.body };
  }
}

/** The instances of a retrieval's plaintext, then its end: the final frame read, nothing after it. */
export async function* retrievedFrom(
  frames: AsyncGenerator<Uint8Array, void, undefined>,
): AsyncGenerator<Retrieved> {
  yield* instancesOf(frames);
  // The multipart body is complete; the stream's final frame must still be read and checked.
  for (let r = await frames.next(); !r.done; r = await frames.next())
    if (r.value.length)
      throw new ZtvError('integrity', 'the cloud sent data after the end of the retrieval');
}

/**
 * Opens a granted retrieval stream: fetches it from the cloud at `base`, opens its frames in order
 * and yields its instances; reports through `opened` the frame number the session goes on from,
 * however the stream ends.
 */
export async function* openRetrieval(
  grant: StreamGrant,
  base: string,
  opened: (seq: number) => void,
  f: typeof fetch,
  signal?: AbortSignal,
): AsyncGenerator<Retrieved> {
  const reader = new FrameReader(grant);
  try {
    yield* retrievedFrom(reader.open(await fetchFrames(base, 'cloud', grant.request, f, signal)));
  } finally {
    opened(reader.seq);
  }
}

/**
 * Opens a retrieval's frames somewhere (`openRetrieval` in this thread, or a worker that runs it):
 * the grant, the cloud's address, the report of the next frame number, the signal that stops it.
 */
export type RetrievalOpener = (
  grant: StreamGrant,
  base: string,
  opened: (seq: number) => void,
  signal?: AbortSignal,
) => AsyncIterable<Retrieved>;

/** A failure as plain data (structured-cloneable): its kind and what the page needs of it. */
export type FailureData =
  | { readonly kind: 'session'; readonly reason: SessionRefusal; readonly message: string }
  | {
      readonly kind: 'remote';
      readonly status: number;
      readonly code: string;
      readonly message: string;
    }
  | {
      readonly kind: 'http';
      readonly status: number;
      readonly reason: string;
      readonly message: string;
    }
  | { readonly kind: 'network'; readonly party: string; readonly url: string }
  | {
      readonly kind: 'ztv';
      readonly code: ErrorCode;
      readonly message: string;
      readonly reason?: string;
    }
  | { readonly kind: 'abort'; readonly message: string }
  | {
      readonly kind: 'error';
      readonly name: string;
      readonly message: string;
      readonly cause?: string;
    };

/** A failure written as data; only its kind, codes and sentence (never keys or contents). */
export function failureData(e: unknown): FailureData {
  if (e instanceof SessionError) return { kind: 'session', reason: e.reason, message: e.message };
  if (e instanceof RemoteError)
    return { kind: 'remote', status: e.status, code: e.code, message: e.message };
  if (e instanceof HttpFailure)
    return { kind: 'http', status: e.status, reason: e.reason, message: e.message };
  if (e instanceof NetworkFailure) return { kind: 'network', party: e.party, url: e.url };
  if (e instanceof ZtvError) {
    const reason = (e.details as { reason?: unknown }).reason;
    return {
      kind: 'ztv',
      code: e.code,
      message: e.message,
      ...(typeof reason === 'string' ? { reason } : {}),
    };
  }
  const err = e as { name?: unknown; message?: unknown; cause?: { code?: unknown } } | undefined;
  if (err?.name === 'AbortError') return { kind: 'abort', message: String(err.message) };
  const cause = err?.cause?.code;
  return {
    kind: 'error',
    name: typeof err?.name === 'string' ? err.name : 'Error',
    message: typeof err?.message === 'string' ? err.message : String(e),
    ...(typeof cause === 'string' ? { cause } : {}),
  };
}

/** The error a failure's data stands for, of the class the page's code tests for. */
export function failureFrom(d: FailureData): Error {
  switch (d.kind) {
    case 'session':
      return new SessionError(d.reason, d.message);
    case 'remote':
      return new RemoteError(d.status, d.code, d.message);
    case 'http':
      return new HttpFailure(d.status, d.reason, d.message);
    case 'network':
      return new NetworkFailure(d.party, d.url);
    case 'ztv':
      return new ZtvError(d.code, d.message, d.reason ? { reason: d.reason } : {});
    case 'abort':
      return new DOMException(d.message, 'AbortError');
    case 'error': {
      const e =
        d.name === 'TypeError'
          ? new TypeError(d.message, d.cause ? { cause: { code: d.cause } } : undefined)
          : new Error(d.message, d.cause ? { cause: { code: d.cause } } : undefined);
      if (d.name !== 'TypeError') e.name = d.name;
      return e;
    }
  }
}
