// The cloud traces without any key and changes nothing but the trace slot's bits; a new trace
// replaces the old one; a damaged container is refused.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { toHex } from '../bytes.ts';
import { isZtvError } from '../errors.ts';
import { traceSlotLength } from './container.ts';
import {
  inspectProtected,
  protect,
  traceIdFrom,
  traceProtected,
  verifyProtected,
} from './index.ts';

let keys: TestKeys;
let bytes: Uint8Array;
beforeAll(async () => {
  keys = await testKeys();
  const input = new Uint8Array(
    readFileSync(samplePath('series/ct_chest_LIDC-IDRI-0314/000002.dcm')),
  );
  bytes = (await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey })).bytes;
});

describe('trace', () => {
  it('changes only low bits of a few samples and verifies without the image key', async () => {
    const traced = await traceProtected(bytes, { signer: keys.cloud, traceId: traceIdFrom('W-7') });
    expect(traced.length).toBe(bytes.length);
    let changed = 0;
    for (let i = 0; i < bytes.length; i++) {
      const d = bytes[i]! ^ traced[i]!;
      if (d) changed++;
      expect(d & ~0x01).toBe(0); // this image's container lives in bit plane 0 (L = 1)
    }
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThanOrEqual(traceSlotLength(inspectProtected(bytes).version) * 8);
    const v = await verifyProtected(traced, { resolver: keys.resolver });
    expect(v.status).toBe('verified');
    expect(v.trace?.text).toBe('W-7');
    expect(inspectProtected(bytes).trace).toBeNull();
  });

  it('a later trace replaces an earlier one', async () => {
    const once = await traceProtected(bytes, { signer: keys.cloud, traceId: traceIdFrom('first') });
    const twice = await traceProtected(once, {
      signer: keys.cloud,
      traceId: traceIdFrom('second'),
    });
    const v = await verifyProtected(twice, { resolver: keys.resolver });
    expect(v.status).toBe('verified');
    expect(v.trace?.id).toBe(toHex(traceIdFrom('second')));
  });

  it('a trace signed by a key that is not a trusted cloud key does not verify', async () => {
    const rogue = await testKeys();
    const traced = await traceProtected(bytes, { signer: rogue.cloud, traceId: traceIdFrom('x') });
    expect((await verifyProtected(traced, { resolver: keys.resolver })).status).toBe(
      'unverifiable',
    );
    const byProducer = await traceProtected(bytes, {
      signer: keys.producer,
      traceId: traceIdFrom('x'),
    });
    const v = await verifyProtected(byProducer, { resolver: keys.resolver });
    expect(v.status).toBe('unverifiable');
    expect(v.summary).toMatch(/belongs to the producer/);
  });

  it('takes 64 hex digits or up to 32 bytes of text as the trace id', () => {
    expect(toHex(traceIdFrom('ab'.repeat(32)))).toBe('ab'.repeat(32));
    expect(() => traceIdFrom('x'.repeat(33))).toThrow(/at most 32/);
    expect(() => traceIdFrom('')).toThrow(/empty/);
  });

  it('refuses plain DICOM that carries no container', async () => {
    const plain = new Uint8Array(readFileSync(samplePath('small/CT_small.dcm')));
    const err = await traceProtected(plain, {
      signer: keys.cloud,
      traceId: traceIdFrom('x'),
    }).catch((e: unknown) => e);
    expect(isZtvError(err) && err.code).toBe('not-protected');
  });
});
