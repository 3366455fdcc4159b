/**
 * multipart/related bodies (RFC 2387), as DICOMweb uses them for STOW-RS and WADO-RS: build one from
 * DICOM instances, and parse one incrementally as it streams in, yielding each complete part.
 */
import { concatBytes, utf8 } from '../bytes.ts';
import { ZtvError } from '../errors.ts';

export interface Part {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

export function buildMultipart(
  parts: readonly Uint8Array[],
  boundary: string,
  type = 'application/dicom',
): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts)
    chunks.push(
      utf8(`--${boundary}\r\nContent-Type: ${type}\r\nContent-Length: ${p.length}\r\n\r\n`),
      p,
      utf8('\r\n'),
    );
  chunks.push(utf8(`--${boundary}--\r\n`));
  return concatBytes(...chunks);
}

/** The boundary parameter of a multipart Content-Type header. */
export function boundaryOf(contentType: string | undefined): string {
  const m = /boundary="?([^";]+)"?/i.exec(contentType ?? '');
  if (!m || !/^multipart\/related/i.test(contentType ?? ''))
    throw new ZtvError('bad-input', 'expected a multipart/related body with a boundary');
  return m[1]!;
}

const indexOf = (hay: Uint8Array, needle: Uint8Array, from: number): number => {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
};

/**
 * Parses a multipart body arriving in chunks. Parts with Content-Length are taken by length (fast and
 * safe for binary); others are delimited by the boundary. The boundary is given, or read from the
 * first line when `boundary` is undefined.
 */
export async function* parseMultipart(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  boundary?: string,
): AsyncGenerator<Part> {
  let buf: Uint8Array = new Uint8Array(0);
  let delimiter: Uint8Array | undefined = boundary ? utf8(`--${boundary}`) : undefined;
  let pos = 0;
  const more = async function* () {
    for await (const c of chunks) yield c;
  };
  const it = more();
  const fill = async (): Promise<boolean> => {
    const n = await it.next();
    if (n.done) return false;
    buf = concatBytes(buf.subarray(pos), n.value);
    pos = 0;
    return true;
  };
  const CRLF = utf8('\r\n');
  const readLine = async (): Promise<string | undefined> => {
    for (;;) {
      const i = indexOf(buf, CRLF, pos);
      if (i >= 0) {
        const line = new TextDecoder().decode(buf.subarray(pos, i));
        pos = i + 2;
        return line;
      }
      if (!(await fill())) return undefined;
    }
  };
  let first = await readLine();
  while (first === '') first = await readLine();
  if (first === undefined) throw new ZtvError('bad-input', 'the multipart body is empty');
  if (!delimiter) delimiter = utf8(first.trim());
  if (first.trim() !== new TextDecoder().decode(delimiter))
    throw new ZtvError('bad-input', 'the multipart body does not start with its boundary');
  for (;;) {
    const headers: Record<string, string> = {};
    for (;;) {
      const line = await readLine();
      if (line === undefined)
        throw new ZtvError('truncated', 'a multipart part ends in its headers');
      if (line === '') break;
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    let body: Uint8Array;
    const length =
      headers['content-length'] !== undefined ? Number(headers['content-length']) : NaN;
    if (Number.isInteger(length) && length >= 0) {
      while (buf.length - pos < length + 2)
        if (!(await fill()))
          throw new ZtvError('truncated', 'a multipart part is shorter than its Content-Length');
      body = buf.slice(pos, pos + length);
      pos += length + 2; // the CRLF before the next delimiter
    } else {
      const marker = concatBytes(CRLF, delimiter);
      let i = indexOf(buf, marker, pos);
      while (i < 0) {
        if (!(await fill()))
          throw new ZtvError('truncated', 'a multipart part has no closing boundary');
        i = indexOf(buf, marker, pos);
      }
      body = buf.slice(pos, i);
      pos = i + 2;
    }
    yield { headers, body };
    const next = await readLine();
    if (next === undefined)
      throw new ZtvError('truncated', 'the multipart body ends without its closing boundary');
    const d = new TextDecoder().decode(delimiter);
    if (next.trim() === `${d}--`) return;
    if (next.trim() !== d)
      throw new ZtvError('bad-input', 'a multipart part is not followed by the boundary');
  }
}
