// multipart/related read and written as streams: every split of the body into chunks gives the same
// parts; parts with and without Content-Length; preamble, epilogue, quoted boundaries as other
// toolkits send them; and each malformed or truncated body refused with its sentence.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromUtf8, utf8 } from './bytes.ts';
import {
  boundaryOf,
  buildMultipart,
  readMultipart,
  writeMultipart,
  type Part,
} from './multipart.ts';

const read = async (chunks: Iterable<Uint8Array>, opts = {}): Promise<Part[]> => {
  const out: Part[] = [];
  for await (const p of readMultipart(chunks, opts)) out.push({ ...p, body: p.body.slice() });
  return out;
};

/** `body` cut at the given offsets. */
const cut = (body: Uint8Array, at: number[]): Uint8Array[] => {
  const points = [0, ...[...new Set(at)].sort((a, b) => a - b), body.length];
  return points.slice(1).map((e, i) => body.slice(points[i], e));
};

describe('multipart/related', () => {
  it('reads back what it writes, however the body is cut into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (bodies, offsets) => {
          const whole = buildMultipart(
            bodies.map((b, i) => ({ headers: { 'Content-Location': `/i/${i}` }, body: b })),
            'zz-boundary',
          );
          const chunks = cut(
            whole,
            offsets.map((o) => o % (whole.length + 1)),
          );
          const parts = await read(chunks, { boundary: 'zz-boundary' });
          expect(parts.map((p) => p.body)).toEqual(bodies);
          expect(parts.map((p) => p.headers['content-location'])).toEqual(
            bodies.map((_, i) => `/i/${i}`),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('streams the same bytes as it builds', async () => {
    const parts = [{ body: utf8('one') }, { body: utf8('two') }];
    const streamed: Uint8Array[] = [];
    for await (const c of writeMultipart(
      (async function* () {
        yield* parts;
      })(),
      'b',
    ))
      streamed.push(c);
    expect(fromUtf8(Buffer.concat(streamed))).toBe(fromUtf8(buildMultipart(parts, 'b')));
  });

  it('reads parts without Content-Length, with a preamble and an epilogue, boundary from the body', async () => {
    const body = utf8(
      'This is the preamble.\r\n--simple boundary\r\nContent-Type: application/dicom\r\n\r\n' +
        'first\r\nwith a line break\r\n--simple boundary\r\n\r\nsecond--simple\r\n' +
        '--simple boundary--\r\nThe epilogue.\r\n',
    );
    for (const size of [1, 3, 7, 1000]) {
      const chunks = cut(
        body,
        Array.from({ length: Math.ceil(body.length / size) }, (_, i) => i * size),
      );
      const parts = await read(chunks);
      expect(parts.map((p) => fromUtf8(p.body))).toEqual([
        'first\r\nwith a line break',
        'second--simple',
      ]);
      expect(parts[0]!.headers['content-type']).toBe('application/dicom');
    }
  });

  it('reads a body of no part (its closing delimiter alone) as empty, and only that', async () => {
    const empty = buildMultipart([], 'b');
    expect(fromUtf8(empty)).toBe('--b--\r\n');
    for (const at of [[], [1], [3, 5]]) expect(await read(cut(empty, at))).toEqual([]);
    expect(await read([empty], { boundary: 'b' })).toEqual([]);
    // A first line of that shape followed by more is a delimiter (boundary "b--"), as before.
    const parts = await read([utf8('--b--\r\n\r\nx\r\n--b----\r\n')]);
    expect(parts.map((p) => fromUtf8(p.body))).toEqual(['x']);
  });

  it('takes the boundary from a Content-Type header, quoted or not', () => {
    expect(boundaryOf('multipart/related; type="application/dicom"; boundary=abc')).toBe('abc');
    expect(boundaryOf('Multipart/Related; boundary="a b:c"; type=application/dicom')).toBe('a b:c');
    expect(() => boundaryOf('multipart/mixed; boundary=abc')).toThrow(/multipart\/related/);
    expect(() => boundaryOf('multipart/related')).toThrow(/boundary/);
    expect(() => boundaryOf(undefined)).toThrow(/boundary/);
  });

  it('refuses a body with more parts than allowed, at the first part beyond', async () => {
    const body = buildMultipart(
      [1, 2, 3].map((n) => ({ body: utf8(`part ${n}`) })),
      'b0undary',
    );
    expect(await read([body], { maxParts: 3 })).toHaveLength(3);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const p of readMultipart([body], { maxParts: 2, what: 'the request' }))
        seen.push(fromUtf8(p.body));
    })();
    await expect(reading).rejects.toThrow('the request holds more than 2 parts');
    expect(seen).toEqual(['part 1', 'part 2']);
  });

  it('refuses truncated and malformed bodies with a sentence', async () => {
    const good = buildMultipart([{ body: utf8('0123456789') }], 'b');
    const text = fromUtf8(good);
    const refusal = async (body: string | Uint8Array, opts = {}) =>
      read([typeof body === 'string' ? utf8(body) : body], opts).then(
        () => 'accepted',
        (e: Error & { code?: string }) => `${e.code}: ${e.message}`,
      );
    expect(await refusal(good.slice(0, good.length - 12))).toMatch(
      /^truncated: .*shorter than its Content-Length|^truncated: .*closing boundary/,
    );
    expect(await refusal(good.slice(0, 30), { what: 'the retrieval' })).toMatch(
      /^truncated: the retrieval ends/,
    );
    expect(await refusal('')).toMatch(/^bad-input: the multipart body is empty/);
    expect(await refusal(text.replace('Content-Length: 10', 'Content-Length: 9'))).toMatch(
      /not followed by the boundary/,
    );
    expect(await refusal(text.replace('Content-Length: 10', 'Content-Length: -1'))).toMatch(
      /bad Content-Length/,
    );
    expect(await refusal(`--b\r\n${'x'.repeat(9000)}`)).toMatch(/line that never ends/);
    expect(
      await refusal('--b\r\n\r\nno length\r\n--b--\r\n', {
        requireLength: true,
        malformed: 'integrity',
      }),
    ).toMatch(/^integrity: .*no Content-Length/);
    expect(await refusal(good, { maxPart: 5 })).toMatch(/larger than 5 bytes/);
    expect(await refusal(good, { boundary: 'other' })).toMatch(/holds no boundary line/);
  });

  // Found by the reliability campaign's fuzzing (issue 17): each new chunk made the reader search
  // the whole queue again, so a body trickled in one-byte chunks cost the square of its length —
  // 10 s for a 9 kB header line. These bodies would take hours that way; linear, well under a second.
  it('reads a body trickled in one-byte chunks in time proportional to its length', async () => {
    const bytes = (b: Uint8Array) => Array.from(b, (x) => Uint8Array.of(x));
    const body = new Uint8Array(200_000).fill(0x2d);
    const whole = utf8(
      `--b\r\nContent-Type: application/dicom\r\n\r\n${'-'.repeat(200_000)}\r\n--b--\r\n`,
    );
    const parts = await read(bytes(whole), { boundary: 'b' });
    expect(parts.map((p) => p.body)).toEqual([body]);
    const longLine = utf8(`--b\r\nX-Long: ${'h'.repeat(8100)}\r\n\r\nx\r\n--b--\r\n`);
    expect(
      (await read(bytes(longLine), { boundary: 'b' })).map((p) => p.headers['x-long']?.length),
    ).toEqual([8100]);
    const endless = utf8(`--b\r\nX-Long: ${'h'.repeat(50_000)}`);
    await expect(read(bytes(endless), { boundary: 'b' })).rejects.toThrow(/a line that never ends/);
  });
});
