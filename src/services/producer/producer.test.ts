// The producer's own helpers: image keys wrapped at rest under the KEK and bound to their instance,
// and slice positions as the consultation answer carries them.
import { describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../core/bytes.ts';
import { slicePosition, unwrapKey, wrapKey } from './app.ts';

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

describe('slice positions', () => {
  it('reads z from Image Position (Patient), keeping 0 and negative positions', () => {
    expect(slicePosition('-170.5\\-190.2\\-302.5')).toBe(-302.5);
    expect(slicePosition('0\\0\\0')).toBe(0);
    expect(slicePosition('1\\2\\ 12.25 ')).toBe(12.25);
  });

  it('gives null when there is no usable z', () => {
    expect(slicePosition(undefined)).toBeNull();
    expect(slicePosition('1\\2')).toBeNull();
    expect(slicePosition('1\\2\\')).toBeNull();
    expect(slicePosition('1\\2\\abc')).toBeNull();
  });
});
