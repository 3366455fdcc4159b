/**
 * AES-CTR over pixel bytes with @noble/ciphers: its WebCrypto wrapper for speed, its pure-JS `ctr`
 * as fallback and reference. Both increment the whole 16-byte counter block big-endian, so they give
 * identical bytes (tested). The image key is fresh per image; the counter block starts at the
 * container's random IV.
 */
import { ctr as jsCtr } from '@noble/ciphers/aes.js';
import { ctr as webCtr } from '@noble/ciphers/webcrypto.js';
import { exactCopy } from '../bytes.ts';
import { hkdfSha256 } from '../crypto/hash.ts';
import { assertInput } from '../errors.ts';

export type CipherBackend = 'webcrypto' | 'js';

/** Whether this runtime offers WebCrypto AES-CTR (browsers, workers, Node 20). */
export const hasWebCrypto = (): boolean =>
  typeof globalThis.crypto !== 'undefined' && typeof globalThis.crypto.subtle !== 'undefined';

/** XORs `data` with the AES-CTR keystream of (key, iv); encryption and decryption are the same. */
export async function aesCtr(
  key: Uint8Array,
  iv: Uint8Array,
  data: Uint8Array,
  backend: CipherBackend = hasWebCrypto() ? 'webcrypto' : 'js',
): Promise<Uint8Array> {
  assertInput(key.length === 16 || key.length === 32, 'an image key is 16 or 32 bytes');
  assertInput(iv.length === 16, 'the AES-CTR counter block is 16 bytes');
  if (backend === 'js') return jsCtr(key, iv).encrypt(data);
  return webCtr(exactCopy(key), exactCopy(iv)).encrypt(data);
}

/**
 * The pixel key K_p of an image key K_i (same length): what a ticket for a de-identified purpose
 * carries instead of K_i. It decrypts the pixels of an image sealed with `FLAG_PIXEL_KEY`, and
 * nothing else: the attributes' KEK is derived from K_i, and HKDF cannot be run backwards.
 */
export const pixelKey = (imageKey: Uint8Array): Uint8Array =>
  hkdfSha256(imageKey, new Uint8Array(0), 'ZTV/pixels/v1', imageKey.length);
