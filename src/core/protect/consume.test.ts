// Opening with `consume` (the worker hands its transferred bytes over, the container planes are
// cleared in place) gives the same verdict and the same restored image as opening a copy — intact,
// with flipped pixel and container bits (tiles localized alike), keyless, and for 8-bit, 16-bit,
// colour and 32-bit images; without `consume` the input is left untouched, and with `lend` it is
// cleared in place as with `consume` and then put back: the same bytes after the call, verdicts alike.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { prng, testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../dicom/parse.ts';
import { openProtected, traceIdFrom, traceProtected } from './index.ts';
import { protect } from './protect.ts';

let keys: TestKeys;
beforeAll(async () => {
  keys = await testKeys();
});

const outcome = async (
  bytes: Uint8Array,
  key: Uint8Array | undefined,
  mode: 'copy' | 'consume' | 'lend',
) => {
  const o = await openProtected(bytes, {
    resolver: keys.resolver,
    ...(key ? { imageKey: key } : {}),
    ...(mode === 'consume' ? { consume: true } : mode === 'lend' ? { lend: true } : {}),
  }).catch((e: Error) => e);
  // A key that does not match the sealed commitment throws (with a trusted seal): alike in each mode.
  if (o instanceof Error) return { error: o.message };
  return {
    verdict: o.verdict,
    pixels: o.restored ? Buffer.from(o.restored.pixels).toString('base64') : undefined,
    file: o.restored ? Buffer.from(o.restored.file()).toString('base64') : undefined,
  };
};

describe('open with consume or lend', () => {
  it.each([
    'series/ct_chest_LIDC-IDRI-0314/000002.dcm',
    'small/CT_small.dcm',
    'small/US-PAL-8-10x-echo.dcm', // 8-bit, ten frames
    'small/SC_rgb.dcm',
    'small/rtdose.dcm',
  ])('%s: same verdicts and images as opening a copy', async (rel) => {
    const input = new Uint8Array(readFileSync(samplePath(rel)));
    const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
    const traced = await traceProtected(p.bytes, {
      signer: keys.cloud,
      traceId: traceIdFrom('ticket-7'),
    });
    const pixelOffset = parseDicom(traced).pixelDataOffset!;
    const rnd = prng(7);
    const variants: Uint8Array[] = [traced];
    for (let i = 0; i < 6; i++) {
      const b = traced.slice();
      // The first pixel bytes hold the container; the rest the ciphertext.
      const at = pixelOffset + (i < 3 ? i * 7 : Math.floor(rnd() * (traced.length - pixelOffset)));
      b[at]! ^= 1 << Math.floor(rnd() * 8);
      variants.push(b);
    }
    for (const [n, v] of variants.entries()) {
      // The right key, none, and a wrong one (it fails the key commitment: open throws, or with
      // a broken seal reports it).
      for (const key of [p.imageKey, undefined, new Uint8Array(32).fill(n + 1)]) {
        const kept = v.slice();
        const plain = await outcome(v, key, 'copy');
        expect(Buffer.from(v).equals(Buffer.from(kept))).toBe(true); // left untouched
        const consumed = await outcome(v.slice(), key, 'consume');
        expect(consumed).toEqual(plain);
        const lent = v.slice();
        expect(await outcome(lent, key, 'lend')).toEqual(plain);
        expect(Buffer.from(lent).equals(Buffer.from(kept))).toBe(true); // put back
        if (n === 0 && key === p.imageKey)
          expect(plain).toMatchObject({ verdict: { status: 'verified' } });
      }
    }
  });
});
