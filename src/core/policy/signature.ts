/**
 * Signed policy files: a policy file is data a service acts on, so its security officer signs it with
 * the organisation's certificate — a compact JWS (ES256) over the exact bytes of the file, with the
 * payload detached (RFC 7515 appendix F) and the signer's chain in `x5c`, kept beside the file as
 * `<file>.jws`. Verifying checks the signature over the bytes as read; who may sign which domain is
 * the caller's to decide from the signer the resolver returns.
 */
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import { toBase64Url } from '../bytes.ts';
import type { SigningKey } from '../crypto/keys.ts';
import { ZtvError } from '../errors.ts';

export const POLICY_SIGNATURE_TYP = 'ztv-policy+jws';

/** Signs the bytes of a policy file; returns the detached compact JWS (`header..signature`). */
export async function signPolicyFile(
  bytes: Uint8Array,
  signer: { readonly key: SigningKey; readonly x5c: readonly string[] },
): Promise<string> {
  if (signer.key.alg !== 'ECDSA-P256')
    throw new ZtvError('bad-key', 'policy files are signed with ECDSA P-256 (ES256)');
  const jws = await new CompactSign(bytes)
    .setProtectedHeader({
      alg: 'ES256',
      typ: POLICY_SIGNATURE_TYP,
      kid: signer.key.publicKey.keyIdHex,
      x5c: [...signer.x5c],
    })
    .sign(signer.key.cryptoKey);
  const [h, , s] = jws.split('.');
  return `${h}..${s}`;
}

/** Who signed: what the resolver makes of the certificate chain in the signature's header. */
export interface PolicySigner {
  readonly key: CryptoKey;
  /** Trust-group member id of the signing organisation. */
  readonly organization: string;
  /** Its role in the federation: authority, producer, consumer, cloud. */
  readonly role: string;
  /** The policy domain its certificate is for. */
  readonly domain: string;
}

export type PolicySignerResolver = (x5c: readonly string[]) => Promise<PolicySigner | string>;

/**
 * Verifies the detached signature of a policy file's bytes; returns the signer. Throws with the
 * reason when the signature is missing, malformed, by an unknown or untrusted certificate, or does
 * not cover these bytes.
 */
export async function verifyPolicyFile(
  bytes: Uint8Array,
  jws: string | undefined,
  resolve: PolicySignerResolver,
  what = 'the policy file',
): Promise<PolicySigner> {
  const fail = (why: string): never => {
    throw new ZtvError('integrity', `${what}: ${why}`);
  };
  if (jws === undefined) return fail('is not signed (no .jws beside it)');
  const parts = jws.trim().split('.');
  if (parts.length !== 3 || parts[1] !== '')
    return fail('its signature is not a detached compact JWS');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws.trim());
  } catch {
    return fail('its signature is not a JWS');
  }
  if (header.typ !== POLICY_SIGNATURE_TYP || header.alg !== 'ES256')
    return fail(`its signature is not a ${POLICY_SIGNATURE_TYP} signed with ES256`);
  if (!Array.isArray(header.x5c) || header.x5c.length === 0)
    return fail("its signature carries no signer's certificate (x5c)");
  const signer = await resolve(header.x5c);
  if (typeof signer === 'string') return fail(`its signer is not trusted: ${signer}`);
  try {
    await compactVerify(`${parts[0]}.${toBase64Url(bytes)}.${parts[2]}`, signer.key, {
      algorithms: ['ES256'],
    });
  } catch {
    return fail('its signature does not verify: the file was altered after it was signed');
  }
  return signer;
}
