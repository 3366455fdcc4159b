// A container of a format version this build does not read: verification must say "unverifiable"
// (naming the version), never "verified" and never "tampered", with or without the image key — on a
// real protected sample whose version field (bytes 4–5 of the container, big-endian) is rewritten in
// the reserved low bit planes, exactly where a future producer would write it.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../dicom/parse.ts';
import { pixelInfoOf } from '../dicom/pixels.ts';
import { FORMAT_VERSION, readRegionBits, writeRegionBits } from './container.ts';
import { geometryOf } from './geometry.ts';
import { inspectProtected, openProtected, protect, traceIdFrom, traceProtected } from './index.ts';

let keys: TestKeys;
let traced: Uint8Array;
let imageKey: Uint8Array;

beforeAll(async () => {
  keys = await testKeys();
  const input = new Uint8Array(
    readFileSync(samplePath('series/ct_chest_LIDC-IDRI-0314/000002.dcm')),
  );
  const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
  imageKey = p.imageKey;
  traced = await traceProtected(p.bytes, { signer: keys.cloud, traceId: traceIdFrom('T-7') });
});

/** The file with the container's version field set to `version`, written bit by bit into R. */
function withVersion(bytes: Uint8Array, version: number): Uint8Array {
  const out = bytes.slice();
  const parsed = parseDicom(out);
  const g = geometryOf(pixelInfoOf(parsed.dataset));
  const L = inspectProtected(out).layout!.planes;
  const pixels = out.subarray(parsed.pixelDataOffset!);
  // Container byte 4 starts at container bit 32; the field is 16 bits, most significant first.
  expect(Array.from(readRegionBits(pixels, g, L, 32, 16))).toEqual([0, FORMAT_VERSION]);
  writeRegionBits(pixels, g, L, Uint8Array.of(version >>> 8, version & 0xff), 32, 16);
  expect(Array.from(readRegionBits(pixels, g, L, 32, 16))).toEqual([version >>> 8, version & 0xff]);
  return out;
}

describe('a container of an unsupported format version', () => {
  it('the intact sample verifies (control)', async () => {
    const o = await openProtected(traced, { resolver: keys.resolver, imageKey });
    expect(o.verdict.status).toBe('verified');
  });

  it.each([3, 0x0100, 0xffff])(
    'version %i is unverifiable, with the reason, without and with the image key',
    async (version) => {
      const file = withVersion(traced, version);
      for (const key of [undefined, imageKey]) {
        const o = await openProtected(file, {
          resolver: keys.resolver,
          ...(key ? { imageKey: key } : {}),
        });
        expect(o.verdict.status).toBe('unverifiable');
        expect(o.verdict.tampered).toEqual([]);
        expect(o.verdict.checks).toEqual([
          {
            id: 'container.version',
            part: 'container',
            result: 'unknown',
            detail: `the container has version ${version}, which this build does not read`,
          },
        ]);
        expect(o.verdict.summary).toBe(
          `cannot verify: the container has version ${version}, which this build does not read`,
        );
        expect(o.restored).toBeUndefined(); // nothing is decrypted under a format it does not know
      }
      expect(inspectProtected(file)).toEqual({
        version,
        intact: false,
        problem: `container version ${version} is not supported`,
      });
    },
  );
});
