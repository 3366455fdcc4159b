/**
 * AES-256-GCM on WebCrypto (`crypto.subtle`), the one copy the platform's sealing uses: session
 * messages and frames (`src/core/session/protocol.ts`) and image keys wrapped at rest by the producer
 * hospital. A 96-bit IV, a 128-bit tag appended to the ciphertext, associated data bound in. Opening
 * fails with a ZtvError naming what failed, never with WebCrypto's bare OperationError.
 */
import { concatBytes, fromHex, randomBytes, toHex, utf8 } from '../bytes.ts';
import { ZtvError } from '../errors.ts';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

const buf = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;

/** Encrypts `plaintext` under `key` with `iv` (12 bytes, never reused with that key) and `aad`. */
export async function gcmSeal(
  key: CryptoKey,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: buf(iv), additionalData: buf(aad) },
      key,
      buf(plaintext),
    ),
  );
}

/** Decrypts and authenticates; a wrong key, IV, AAD or any altered byte throws `integrity`. */
export async function gcmOpen(
  key: CryptoKey,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
  what = 'the sealed data',
): Promise<Uint8Array> {
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: buf(iv), additionalData: buf(aad) },
        key,
        buf(ciphertext),
      ),
    );
  } catch {
    throw new ZtvError('integrity', `${what} failed authentication: altered, or another key`);
  }
}

/** An AES-256-GCM key from 32 raw bytes, usable to encrypt and decrypt only. */
export const importGcmKey = (raw: Uint8Array, extractable = false): Promise<CryptoKey> =>
  crypto.subtle.importKey('raw', buf(raw), 'AES-GCM', extractable, ['encrypt', 'decrypt']);

/**
 * A key wrapped at rest under a key-encryption key, bound to what it belongs to (`binding`, the
 * AAD): hex of IV ‖ ciphertext ‖ tag, a fresh random IV each time.
 */
export async function wrapKey(kek: CryptoKey, key: Uint8Array, binding: string): Promise<string> {
  const iv = randomBytes(GCM_IV_BYTES);
  return toHex(concatBytes(iv, await gcmSeal(kek, iv, key, utf8(binding))));
}

/** The key `wrapKey` wrapped; refused when moved to another binding, altered or under another KEK. */
export async function unwrapKey(
  kek: CryptoKey,
  wrapped: string,
  binding: string,
): Promise<Uint8Array> {
  const b = fromHex(wrapped);
  if (b.length < GCM_IV_BYTES + GCM_TAG_BYTES)
    throw new ZtvError('integrity', 'a wrapped key is too short');
  return gcmOpen(
    kek,
    b.subarray(0, GCM_IV_BYTES),
    b.subarray(GCM_IV_BYTES),
    utf8(binding),
    'a wrapped image key',
  );
}
