/**
 * How verification finds the public keys of seals and traces: a SignerResolver maps a key id found in
 * a container to a trusted key, or says why it cannot (unknown, revoked, expired, wrong role). The
 * development key set implements it from PEM files; the PKI implements it from certificates.
 */
import { toHex } from '../bytes.ts';
import type { VerifyKey } from '../crypto/keys.ts';

/** Who may sign what: the producer hospital seals images, the cloud provider signs traces. */
export type SignerRole = 'producer' | 'cloud';

export interface TrustedSigner {
  readonly key: VerifyKey;
  /** The signer's name as its certificate (or key file) gives it, e.g. "CN=Producer Hospital". */
  readonly subject: string;
  /** Subjects from the signer up to the trust anchor, when the signer is certified. */
  readonly chain: readonly string[];
}

export type SignerLookup =
  | { readonly ok: true; readonly signer: TrustedSigner }
  /** `reason` is one sentence for people: unknown key, revoked, expired, not in the trust group… */
  | { readonly ok: false; readonly reason: string };

export interface SignerResolver {
  /**
   * Resolves `keyId` (16 bytes: SHA-256 of the signer's SubjectPublicKeyInfo, truncated) for `role`,
   * validating the signer as of `at` (the signing time the container claims) and revocation as of now.
   */
  resolve(keyId: Uint8Array, role: SignerRole, at: Date): Promise<SignerLookup>;
}

/** A resolver over a fixed set of keys per role (development keys, tests). */
export function staticResolver(
  keys: Partial<Record<SignerRole, { key: VerifyKey; subject: string }[]>>,
): SignerResolver {
  return {
    async resolve(keyId, role) {
      const hex = toHex(keyId);
      const hit = (keys[role] ?? []).find((k) => k.key.keyIdHex === hex);
      if (hit) return { ok: true, signer: { key: hit.key, subject: hit.subject, chain: [] } };
      const other = Object.entries(keys).find(([, ks]) => ks?.some((k) => k.key.keyIdHex === hex));
      return {
        ok: false,
        reason: other
          ? `key ${hex} belongs to the ${other[0]}, not to a ${role}`
          : `no trusted ${role} key has id ${hex}`,
      };
    },
  };
}
