// AES-CTR: both backends reproduce NIST SP 800-38A F.5 vectors and give identical bytes on any input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../bytes.ts';
import { aesCtr } from './cipher.ts';

const PLAIN =
  '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51' +
  '30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710';
const COUNTER = 'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff';

const VECTORS = [
  {
    name: 'F.5.1 CTR-AES128',
    key: '2b7e151628aed2a6abf7158809cf4f3c',
    cipher:
      '874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff' +
      '5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee',
  },
  {
    name: 'F.5.5 CTR-AES256',
    key: '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4',
    cipher:
      '601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5' +
      '2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6',
  },
];

describe('AES-CTR', () => {
  it.each(VECTORS)('$name, both backends', async (v) => {
    for (const backend of ['webcrypto', 'js'] as const) {
      const out = await aesCtr(fromHex(v.key), fromHex(COUNTER), fromHex(PLAIN), backend);
      expect(toHex(out)).toBe(v.cipher);
    }
  });

  it('WebCrypto and pure-JS give identical bytes for any key, counter and length', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(16, 32),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 70_000 }),
        async (keyLen, iv, len) => {
          const key = crypto.getRandomValues(new Uint8Array(keyLen));
          const data = crypto.getRandomValues(new Uint8Array(Math.min(len, 65536)));
          const big = len > 65536 ? new Uint8Array(len) : data;
          const a = await aesCtr(key, iv, big, 'webcrypto');
          const b = await aesCtr(key, iv, big, 'js');
          expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
          expect(Buffer.from(await aesCtr(key, iv, a, 'js')).equals(Buffer.from(big))).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('rejects keys and counters of the wrong size', async () => {
    await expect(aesCtr(new Uint8Array(24), new Uint8Array(16), new Uint8Array(1))).rejects.toThrow(
      /16 or 32/,
    );
    await expect(aesCtr(new Uint8Array(16), new Uint8Array(12), new Uint8Array(1))).rejects.toThrow(
      /16 bytes/,
    );
  });
});
