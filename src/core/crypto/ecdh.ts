/**
 * ECDH on P-256, the key agreement of the platform: tickets are encrypted to parties' and devices'
 * ECDH keys (JWE ECDH-ES), and sessions agree their keys with ephemeral ECDH. One copy of the
 * parameters and of the imports, on WebCrypto.
 */
export const ECDH_P256: EcKeyGenParams & EcKeyImportParams = { name: 'ECDH', namedCurve: 'P-256' };

/** An ECDH P-256 public key from its SubjectPublicKeyInfo (DER). */
export const importEcdhPublicKey = (spki: Uint8Array, extractable = true): Promise<CryptoKey> =>
  crypto.subtle.importKey('spki', spki as Uint8Array<ArrayBuffer>, ECDH_P256, extractable, []);

/** An ECDH P-256 private key from PKCS #8 (DER), for key agreement only. */
export const importEcdhPrivateKey = (pkcs8: Uint8Array, extractable = false): Promise<CryptoKey> =>
  crypto.subtle.importKey('pkcs8', pkcs8 as Uint8Array<ArrayBuffer>, ECDH_P256, extractable, [
    'deriveBits',
    'deriveKey',
  ]);
