/**
 * multipart/related (RFC 2387, RFC 2046 §5.1) as DICOMweb carries instances in it — STOW-RS requests
 * to the producer, retrievals from the cloud — read and written as streams: the one module every
 * party and client uses. The reader takes chunks as they arrive and yields each complete part: by its
 * Content-Length when it has one (its bytes copied once, straight into the part), else up to the next
 * delimiter; a preamble before the first delimiter and an epilogue after the last are ignored. Lines
 * and header counts are bounded, so a hostile body cannot grow memory. The writer yields a part's
 * headers, its bytes (not copied) and the delimiters, one piece at a time.
 */
import { ChunkQueue } from './chunks.ts';
import { utf8 } from './bytes.ts';
import { ZtvError, type ErrorCode } from './errors.ts';

export interface Part {
  /** Header names lower-cased. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** A part to write: its headers (Content-Length is added) and its bytes. */
export interface OutgoingPart {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

const CRLF = utf8('\r\n');

/** The boundary parameter of a multipart/related Content-Type header (quoted or not). */
export function boundaryOf(contentType: string | undefined): string {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '');
  if (!m || !/^\s*multipart\/related\s*(;|$)/i.test(contentType ?? ''))
    throw new ZtvError('bad-input', 'expected a multipart/related body with a boundary');
  return (m[1] ?? m[2])!;
}

/** One part's pieces: its delimiter and headers, its bytes (not copied), the CRLF after them. */
function partChunks(p: OutgoingPart, boundary: string): Uint8Array[] {
  const headers = { 'Content-Type': 'application/dicom', ...p.headers };
  let head = `--${boundary}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  return [utf8(`${head}Content-Length: ${p.body.length}\r\n\r\n`), p.body, CRLF];
}

const closing = (boundary: string) => utf8(`--${boundary}--\r\n`);

/** The pieces of a multipart/related body, in order. */
export function* multipartChunks(
  parts: Iterable<OutgoingPart>,
  boundary: string,
): Generator<Uint8Array> {
  for (const p of parts) yield* partChunks(p, boundary);
  yield closing(boundary);
}

/** The same body as a stream, for parts that are made one at a time (read, then traced). */
export async function* writeMultipart(
  parts: AsyncIterable<OutgoingPart>,
  boundary: string,
): AsyncGenerator<Uint8Array> {
  for await (const p of parts) yield* partChunks(p, boundary);
  yield closing(boundary);
}

/** A whole body in one buffer (requests small enough to send at once). */
export function buildMultipart(parts: readonly OutgoingPart[], boundary: string): Uint8Array {
  const pieces = [...multipartChunks(parts, boundary)];
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export interface ReadOptions {
  /** The boundary; read from the first delimiter line when absent. */
  readonly boundary?: string;
  /** What the body is, for the errors' sentences ("the retrieval"). */
  readonly what?: string;
  /** The code of a malformed body's error (a truncated one is always `truncated`). */
  readonly malformed?: ErrorCode;
  /** Refuse a part without a Content-Length (a peer that always sends one). */
  readonly requireLength?: boolean;
  /** The largest part accepted, in bytes. */
  readonly maxPart?: number;
  /** The most parts accepted: a body with more is refused at the first part beyond. */
  readonly maxParts?: number;
}

const LINE_MAX = 8192;
const HEADERS_MAX = 64;

/** The parts of a multipart/related body arriving in chunks, each yielded once complete. */
export async function* readMultipart(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: ReadOptions = {},
): AsyncGenerator<Part> {
  const what = opts.what ?? 'the multipart body';
  const malformed = (message: string) => new ZtvError(opts.malformed ?? 'bad-input', message);
  const maxPart = opts.maxPart ?? Number.MAX_SAFE_INTEGER;
  const maxParts = opts.maxParts ?? Number.MAX_SAFE_INTEGER;
  const source = (async function* () {
    for await (const c of chunks) yield c;
  })();
  const q = new ChunkQueue();
  const dec = new TextDecoder();
  const fill = async (): Promise<boolean> => {
    const r = await source.next();
    if (r.done) return false;
    q.push(r.value);
    return true;
  };
  /** The next line without its CRLF; undefined at the end of the body. */
  const line = async (): Promise<string | undefined> => {
    // Searched again from where the last search stopped, whatever the chunks' sizes.
    for (let from = 0; ;) {
      const i = q.indexOf(CRLF, from);
      if (i >= 0 && i <= LINE_MAX) {
        const text = dec.decode(q.take(i));
        q.take(2);
        return text;
      }
      if (q.length > LINE_MAX) throw malformed(`${what} has a line that never ends`);
      from = Math.max(0, q.length - 1);
      if (!(await fill())) return undefined;
    }
  };
  const required = async (where: string): Promise<string> => {
    const l = await line();
    if (l === undefined) throw new ZtvError('truncated', `${what} ends ${where}`);
    return l;
  };

  // The preamble, if any, up to the first delimiter.
  let delimiter = opts.boundary ? `--${opts.boundary}` : undefined;
  for (let n = 0; ; n++) {
    const l = await line();
    if (l === undefined)
      throw malformed(n === 0 ? `${what} is empty` : `${what} holds no boundary line`);
    const t = l.trimEnd();
    // A body of no part (a resumed retrieval with nothing left): a closing delimiter, then nothing.
    if (
      (delimiter ? t === `${delimiter}--` : /^--.+--$/.test(t)) &&
      q.length === 0 &&
      !(await fill())
    )
      return;
    if (delimiter ? t === delimiter : t.startsWith('--') && t.length > 2) {
      delimiter ??= t;
      break;
    }
    if (n > HEADERS_MAX) throw malformed(`${what} does not start with its boundary`);
  }
  const marker = utf8(`\r\n${delimiter}`);
  for (let parts = 1; ; parts++) {
    if (parts > maxParts) throw malformed(`${what} holds more than ${maxParts} parts`);
    const headers: Record<string, string> = {};
    for (let n = 0; ; n++) {
      const h = await required('in the headers of a part');
      if (h === '') break;
      if (n >= HEADERS_MAX) throw malformed(`a part of ${what} has too many headers`);
      const c = h.indexOf(':');
      if (c > 0) headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
    }
    const declared = headers['content-length'];
    let body: Uint8Array;
    if (declared !== undefined) {
      const length = /^\d{1,15}$/.test(declared) ? Number(declared) : NaN;
      if (!Number.isSafeInteger(length))
        throw malformed(`a part of ${what} has a bad Content-Length`);
      if (length > maxPart) throw malformed(`a part of ${what} is larger than ${maxPart} bytes`);
      while (q.length < length + 2)
        if (!(await fill()))
          throw new ZtvError('truncated', `a part of ${what} is shorter than its Content-Length`);
      body = q.take(length);
      if (q.at(0) !== 13 || q.at(1) !== 10)
        throw malformed(`a part of ${what} is not followed by the boundary`);
      q.take(2); // the CRLF before the next delimiter
    } else {
      if (opts.requireLength) throw malformed(`a part of ${what} has no Content-Length`);
      let i = q.indexOf(marker);
      while (i < 0) {
        if (q.length > maxPart + marker.length)
          throw malformed(`a part of ${what} is larger than ${maxPart} bytes`);
        const from = Math.max(0, q.length - marker.length);
        if (!(await fill()))
          throw new ZtvError('truncated', `a part of ${what} has no closing boundary`);
        i = q.indexOf(marker, from);
      }
      body = q.take(i);
      q.take(2);
    }
    yield { headers, body };
    const next = (await required('without its closing boundary')).trimEnd();
    if (next === `${delimiter}--`) return; // an epilogue may follow: it is not read
    if (next !== delimiter) throw malformed(`a part of ${what} is not followed by the boundary`);
  }
}
