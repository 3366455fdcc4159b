/**
 * Signing keys for seals and traces: Ed25519 or ECDSA P-256 (SHA-256, IEEE P1363 r||s), held as
 * WebCrypto keys, exchanged as PEM (PKCS#8 private, SPKI public). A key's id is the first 16 bytes
 * of SHA-256 over its SPKI DER, so a verifier can find the right public key in its trust store.
 */
import * as asn1js from 'asn1js';
import { PrivateKeyInfo, PublicKeyInfo } from 'pkijs';
import { exactCopy, fromBase64, toBase64, toHex } from '../bytes.ts';
import { ZtvError } from '../errors.ts';
import { sha256 } from './hash.ts';

export type SigAlg = 'Ed25519' | 'ECDSA-P256';
/** Numeric codes of signature algorithms inside binary structures (the protection container). */
export const SIG_ALG_CODE: Record<SigAlg, number> = { Ed25519: 1, 'ECDSA-P256': 2 };
export const SIG_ALG_BY_CODE: Record<number, SigAlg | undefined> = {
  1: 'Ed25519',
  2: 'ECDSA-P256',
};
export const SIGNATURE_LENGTH = 64;
export const KEY_ID_LENGTH = 16;

const OID_ED25519 = '1.3.101.112';
const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_P256 = '1.2.840.10045.3.1.7';

const importParams = (alg: SigAlg): EcKeyImportParams | Algorithm =>
  alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
const signParams = (alg: SigAlg): Algorithm | EcdsaParams =>
  alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };

export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = toBase64(der)
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Every PEM block in `text` with the given label, as DER. */
export function pemDecodeAll(text: string, label: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => fromBase64(m[1] ?? ''));
}

export function pemDecode(text: string, label: string): Uint8Array {
  const all = pemDecodeAll(text, label);
  if (all.length !== 1 || !all[0])
    throw new ZtvError('bad-key', `expected exactly one PEM "${label}" block`);
  return all[0];
}

function algOfSpki(spki: Uint8Array): SigAlg {
  let info: PublicKeyInfo;
  try {
    info = PublicKeyInfo.fromBER(exactCopy(spki));
  } catch {
    throw new ZtvError('bad-key', 'the public key is not a valid SubjectPublicKeyInfo');
  }
  return algOf(info.algorithm.algorithmId, info.algorithm.algorithmParams);
}

function algOf(oid: string, params: unknown): SigAlg {
  if (oid === OID_ED25519) return 'Ed25519';
  if (oid === OID_EC_PUBLIC_KEY && params instanceof asn1js.ObjectIdentifier) {
    if (params.valueBlock.toString() === OID_P256) return 'ECDSA-P256';
  }
  throw new ZtvError('bad-key', `unsupported key algorithm ${oid}: use Ed25519 or ECDSA P-256`);
}

export const keyIdOf = (spki: Uint8Array): Uint8Array => sha256(spki).subarray(0, KEY_ID_LENGTH);

export interface VerifyKey {
  readonly alg: SigAlg;
  /** The WebCrypto public key, for libraries that take one (JOSE). */
  readonly cryptoKey: CryptoKey;
  readonly spki: Uint8Array;
  readonly keyId: Uint8Array;
  readonly keyIdHex: string;
  verify(signature: Uint8Array, message: Uint8Array): Promise<boolean>;
}

export interface SigningKey {
  readonly alg: SigAlg;
  /** The WebCrypto private key (possibly non-extractable), for libraries that take one (JOSE). */
  readonly cryptoKey: CryptoKey;
  readonly publicKey: VerifyKey;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

export async function verifyKeyFromSpki(spki: Uint8Array): Promise<VerifyKey> {
  const alg = algOfSpki(spki);
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('spki', exactCopy(spki), importParams(alg), true, [
      'verify',
    ]);
  } catch {
    throw new ZtvError('bad-key', `the ${alg} public key could not be imported`);
  }
  const keyId = keyIdOf(spki);
  return {
    alg,
    cryptoKey: key,
    spki: exactCopy(spki),
    keyId,
    keyIdHex: toHex(keyId),
    async verify(signature, message) {
      if (signature.length !== SIGNATURE_LENGTH) return false;
      try {
        return await crypto.subtle.verify(
          signParams(alg),
          key,
          exactCopy(signature),
          exactCopy(message),
        );
      } catch {
        return false;
      }
    },
  };
}

export const verifyKeyFromPem = (pem: string): Promise<VerifyKey> =>
  verifyKeyFromSpki(pemDecode(pem, 'PUBLIC KEY'));

/** Wraps an existing WebCrypto key pair (e.g. a non-extractable device key) as a SigningKey. */
export async function signingKeyFromCryptoKeys(
  alg: SigAlg,
  privateKey: CryptoKey,
  publicKey: CryptoKey,
): Promise<SigningKey> {
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', publicKey));
  const pub = await verifyKeyFromSpki(spki);
  return {
    alg,
    cryptoKey: privateKey,
    publicKey: pub,
    async sign(message) {
      return new Uint8Array(
        await crypto.subtle.sign(signParams(alg), privateKey, exactCopy(message)),
      );
    },
  };
}

export async function signingKeyFromPkcs8(pkcs8: Uint8Array): Promise<SigningKey> {
  let info: PrivateKeyInfo;
  try {
    info = PrivateKeyInfo.fromBER(exactCopy(pkcs8));
  } catch {
    throw new ZtvError('bad-key', 'the private key is not valid PKCS#8');
  }
  const alg = algOf(info.privateKeyAlgorithm.algorithmId, info.privateKeyAlgorithm.algorithmParams);
  let privateKey: CryptoKey;
  try {
    // Extractable so that the public key can be derived through JWK; the private key never leaves.
    privateKey = await crypto.subtle.importKey('pkcs8', exactCopy(pkcs8), importParams(alg), true, [
      'sign',
    ]);
  } catch {
    throw new ZtvError('bad-key', `the ${alg} private key could not be imported`);
  }
  const jwk = await crypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  const publicKey = await crypto.subtle.importKey('jwk', jwk, importParams(alg), true, ['verify']);
  return signingKeyFromCryptoKeys(alg, privateKey, publicKey);
}

export const signingKeyFromPem = (pem: string): Promise<SigningKey> =>
  signingKeyFromPkcs8(pemDecode(pem, 'PRIVATE KEY'));

export interface KeyPairPem {
  privatePem: string;
  publicPem: string;
}

export async function generateKeyPairPem(alg: SigAlg = 'Ed25519'): Promise<KeyPairPem> {
  const pair = (await crypto.subtle.generateKey(importParams(alg) as EcKeyGenParams, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
  return { privatePem: pemEncode('PRIVATE KEY', pkcs8), publicPem: pemEncode('PUBLIC KEY', spki) };
}
