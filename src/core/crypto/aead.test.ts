// AES-256-GCM as the platform uses it: image keys wrapped at rest under the producer's KEK and bound
// to their instance, and the seal/open pair the session protocol is built on.
import { describe, expect, it } from 'vitest';
import { randomBytes, toHex, utf8 } from '../bytes.ts';
import { gcmOpen, gcmSeal, importGcmKey, unwrapKey, wrapKey } from './aead.ts';

const kek = () =>
  crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);

describe('image keys at rest', () => {
  it('unwrap what was wrapped, and the wrapped form holds no trace of the key', async () => {
    const k = await kek();
    const key = randomBytes(32);
    const wrapped = await wrapKey(k, key, 'digest-a');
    expect(wrapped).not.toContain(toHex(key));
    expect(wrapped).toHaveLength((12 + 32 + 16) * 2);
    expect(await unwrapKey(k, wrapped, 'digest-a')).toEqual(key);
    // A fresh IV each time: wrapping twice gives two different texts.
    expect(await wrapKey(k, key, 'digest-a')).not.toBe(wrapped);
  });

  it('refuses a wrapped key moved to another instance, altered, or opened with another KEK', async () => {
    const k = await kek();
    const wrapped = await wrapKey(k, randomBytes(16), 'digest-a');
    await expect(unwrapKey(k, wrapped, 'digest-b')).rejects.toThrow();
    const flipped = wrapped.slice(0, 40) + (wrapped[40] === '0' ? '1' : '0') + wrapped.slice(41);
    await expect(unwrapKey(k, flipped, 'digest-a')).rejects.toThrow();
    await expect(unwrapKey(await kek(), wrapped, 'digest-a')).rejects.toThrow();
  });
});

describe('AES-256-GCM', () => {
  it('matches the NIST GCM test vector (test case 16 of the GCM specification, 256-bit key)', async () => {
    const hex = (h: string) => Uint8Array.from(h.match(/../g)!.map((b) => parseInt(b, 16)));
    const key = await importGcmKey(
      hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308'),
    );
    const iv = hex('cafebabefacedbaddecaf888');
    const pt = hex(
      'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
    );
    const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
    const ct = await gcmSeal(key, iv, pt, aad);
    expect(toHex(ct)).toBe(
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662' +
        '76fc6ece0f4e1768cddf8853bb2d551b',
    );
    expect(await gcmOpen(key, iv, ct, aad)).toEqual(pt);
  });

  it('refuses an altered ciphertext or other associated data, with a sentence', async () => {
    const key = await importGcmKey(randomBytes(32));
    const iv = randomBytes(12);
    const ct = await gcmSeal(key, iv, utf8('secret'), utf8('aad'));
    await expect(gcmOpen(key, iv, ct, utf8('other'), 'the message')).rejects.toThrow(
      /the message failed authentication/,
    );
    ct[0]! ^= 1;
    await expect(gcmOpen(key, iv, ct, utf8('aad'))).rejects.toThrow(/failed authentication/);
  });
});
