/** Hashes and key derivation used by the protection format: SHA-256, HMAC-SHA-256, HKDF-SHA-256. */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { concatBytes, utf8 } from '../bytes.ts';

export const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = nobleSha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
};

export const hmacSha256 = (key: Uint8Array, ...parts: Uint8Array[]): Uint8Array => {
  const h = nobleHmac.create(nobleSha256, key);
  for (const p of parts) h.update(p);
  return h.digest();
};

/** HKDF-SHA-256 with a text label as `info`, so every derived key says what it is for. */
export const hkdfSha256 = (
  ikm: Uint8Array,
  salt: Uint8Array,
  label: string,
  length = 32,
): Uint8Array => nobleHkdf(nobleSha256, ikm, salt, utf8(label), length);

/** A domain-separated digest: SHA-256(label || 0x00 || parts...). */
export const taggedHash = (label: string, ...parts: Uint8Array[]): Uint8Array =>
  sha256(concatBytes(utf8(label), Uint8Array.of(0)), ...parts);
