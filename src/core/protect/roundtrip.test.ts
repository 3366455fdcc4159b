// Every real sample a hospital would send round-trips: protect → trace → verify (no key) → open, with
// pixels bit-identical to the decoded original and every original header element restored.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { MANIFEST } from '../../../test/manifest.ts';
import { samplePath } from '../../../test/samples.ts';
import { toHex } from '../bytes.ts';
import type { DataSet } from '../dicom/dataset.ts';
import { parseDicom } from '../dicom/parse.ts';
import { decodeNestedPixelData, readPixelData } from '../dicom/pixels.ts';
import { T } from '../dicom/tags.ts';
import { writeDataSet } from '../dicom/write.ts';
import { DataSet as DS } from '../dicom/dataset.ts';
import { openProtected, protect, traceIdFrom, traceProtected, verifyProtected } from './index.ts';

let keys: TestKeys;
beforeAll(async () => {
  keys = await testKeys();
});

const encode = (ds: DataSet, tag: number): string => {
  const one = new DS();
  const el = ds.get(tag);
  if (el) one.set(el);
  return toHex(writeDataSet(one));
};

/** Elements a decoded (formerly compressed) original legitimately restates. */
const DECODE_ADJUSTED = new Set([
  T.PhotometricInterpretation,
  T.PlanarConfiguration,
  T.LossyImageCompression,
]);

async function roundTrip(rel: string): Promise<void> {
  const input = new Uint8Array(readFileSync(samplePath(rel)));
  const source = parseDicom(input, rel);
  const decoded = await readPixelData(source);
  const p = await protect(input, {
    signer: keys.producer,
    pseudonymKey: keys.pseudonymKey,
    what: rel,
  });
  const traceId = traceIdFrom(`ticket:${rel.slice(-20)}`);
  const traced = await traceProtected(p.bytes, { signer: keys.cloud, traceId });

  const keyless = await verifyProtected(traced, { resolver: keys.resolver });
  expect(keyless.status, keyless.summary).toBe('verified');
  expect(keyless.keyed).toBe(false);

  const opened = await openProtected(traced, { resolver: keys.resolver, imageKey: p.imageKey });
  expect(opened.verdict.status, opened.verdict.summary).toBe('verified');
  expect(opened.verdict.trace?.id).toBe(toHex(traceId));
  expect(opened.verdict.checks.filter((c) => c.result === 'pass').map((c) => c.id)).toEqual(
    expect.arrayContaining([
      'seal.signature',
      'trace.signature',
      'pixels.ciphertext',
      'pixels.original',
      'header.original',
    ]),
  );
  const restored = opened.restored!;
  expect(Buffer.from(restored.pixels).equals(Buffer.from(decoded.data))).toBe(true);

  // Every element of the source header is back, byte for byte (icons nested as encapsulated pixel
  // data come back decoded: a native file cannot hold them).
  const expected = source.dataset.clone();
  await decodeNestedPixelData(expected, source.transferSyntax);
  for (const el of expected.elements()) {
    if (el.tag === decoded.info.pixelTag) continue;
    if (decoded.decodedFrom && DECODE_ADJUSTED.has(el.tag)) continue;
    expect(encode(restored.dataset, el.tag), `${rel} element ${el.tag.toString(16)}`).toBe(
      encode(expected, el.tag),
    );
  }
  // …and nothing else came along but the decoded pixel form.
  for (const el of restored.dataset.elements())
    if (!source.dataset.has(el.tag))
      expect(DECODE_ADJUSTED.has(el.tag), `${rel} extra ${el.tag.toString(16)}`).toBe(true);

  // The restored file is itself readable DICOM with the same pixels.
  const again = await readPixelData(parseDicom(restored.file(), 'restored'));
  expect(Buffer.from(again.data).equals(Buffer.from(decoded.data))).toBe(true);
}

const images = (prefix: string) =>
  MANIFEST.filter((m) => m.file.startsWith(prefix) && m.dims !== 'no image').map((m) => m.file);

describe('small/ round-trips', () => {
  it.each(images('small/'))('%s', roundTrip);
});

describe('large/ round-trips', () => {
  it.each(images('large/'))('%s', roundTrip, 300_000);
});

describe('series/ round-trips', () => {
  it.each(['series/ct_chest_LIDC-IDRI-0314/', 'series/mr_brain_mprage_FNNDSC-adi/'])(
    'every file of %s',
    async (dir) => {
      for (const f of images(dir)) await roundTrip(f);
    },
    600_000,
  );
});
