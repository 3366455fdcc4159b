/**
 * AES-CTR over pixel bytes with @noble/ciphers: its WebCrypto wrapper for speed, its pure-JS `ctr`
 * as fallback and reference. Both increment the whole 16-byte counter block big-endian, so they give
 * identical bytes (tested). The image key is fresh per image; the counter block starts at the
 * container's random IV.
 */
import { ctr as jsCtr } from '@noble/ciphers/aes.js';
import { ctr as webCtr } from '@noble/ciphers/webcrypto.js';
import { exactCopy } from '../bytes.ts';
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
