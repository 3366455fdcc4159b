/**
 * Blind tickets (docs/services.md, "Blind ticket format"):
 * `[ Sign_PH(Enc_CP(ID_i, W_trace)), Sign_PH(Enc_CH(K_i)) ]` in JOSE — each part a compact JWS (ES256, by the producer) whose payload is a compact JWE (ECDH-ES+A256KW, A256GCM)
 * to its reader: the cloud part to the cloud's encryption key, the key part to the clinician's device
 * encryption key. Both are bound to the issuer, the audience, the device, an expiry, a ticket id and
 * the exact image list; the cloud part carries a one-time nonce the cloud spends on redemption.
 * Encrypt-then-sign as the design writes it: readers check the producer's signature before they
 * decrypt, and check the issuer inside matches the signer (no signature stripping).
 */
import {
  CompactEncrypt,
  CompactSign,
  compactDecrypt,
  compactVerify,
  decodeProtectedHeader,
} from 'jose';
import { fromBase64Url, fromUtf8, randomBytes, toBase64Url, toHex, utf8 } from '../bytes.ts';
import type { SigningKey, VerifyKey } from '../crypto/keys.ts';
import { assertInput, ZtvError } from '../errors.ts';
import { PURPOSE_CODE } from '../policy/purposes.ts';

export const CLOUD_TYP = 'ztv-ticket-cloud+jws';
export const KEYS_TYP = 'ztv-ticket-keys+jws';
const CLOCK_SKEW_MS = 60_000;

export interface CloudClaims {
  readonly v: 1;
  /** Issuer (producer hospital id) and audience (cloud id). */
  readonly iss: string;
  readonly aud: string;
  /** Ticket id, and the device (certificate thumbprint) the ticket is for. */
  readonly tid: string;
  readonly sub: string;
  readonly iat: number;
  readonly exp: number;
  /** One-time nonce (hex), spent by the cloud on redemption. */
  readonly nonce: string;
  /**
   * The purpose of use the producer's decision allowed (an HL7 v3 PurposeOfUse code): the only one
   * the cloud honours when it decides the redemption under its own policy.
   */
  readonly purpose: string;
  /** The exact image list and, per image, the trace W_trace (64 hex digits) to insert. */
  readonly images: readonly { readonly id: string; readonly trace: string }[];
}

export interface KeyClaims {
  readonly v: 1;
  readonly iss: string;
  /** The device (certificate thumbprint) whose encryption key opens this part. */
  readonly aud: string;
  readonly tid: string;
  readonly iat: number;
  readonly exp: number;
  /** The image keys K_i (base64url), for exactly the images of the cloud part. */
  readonly images: readonly { readonly id: string; readonly key: string }[];
}

export interface Ticket {
  readonly tid: string;
  /** For the cloud: Sign_PH(Enc_CP(image ids, traces)). */
  readonly cloud: string;
  /** For the clinician's device: Sign_PH(Enc_CH(image keys)). */
  readonly keys: string;
  readonly expiresAt: number;
}

export interface IssueInput {
  readonly producer: SigningKey;
  readonly producerId: string;
  readonly cloudId: string;
  /** The cloud's ECDH P-256 public key (JWE recipient). */
  readonly cloudEncryptionKey: CryptoKey;
  readonly deviceId: string;
  /** The device's ECDH P-256 public key (JWE recipient). */
  readonly deviceEncryptionKey: CryptoKey;
  readonly images: readonly {
    readonly id: string;
    readonly key: Uint8Array;
    readonly trace: Uint8Array;
  }[];
  readonly ttlMs: number;
  /** The purpose of use the producer allowed (HL7 v3 PurposeOfUse code). */
  readonly purpose: string;
  readonly now?: number;
}

async function signEncrypted(
  claims: object,
  recipient: CryptoKey,
  signer: SigningKey,
  typ: string,
): Promise<string> {
  const jwe = await new CompactEncrypt(utf8(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'json' })
    .encrypt(recipient);
  if (signer.alg !== 'ECDSA-P256')
    throw new ZtvError('bad-key', 'tickets are signed with ECDSA P-256 (ES256)');
  return new CompactSign(utf8(jwe))
    .setProtectedHeader({ alg: 'ES256', typ, kid: signer.publicKey.keyIdHex })
    .sign(signer.cryptoKey);
}

/** The producer issues a ticket for `images` to one device, redeemable once at one cloud. */
export async function issueTicket(input: IssueInput): Promise<Ticket> {
  assertInput(input.images.length > 0, 'a ticket names at least one image');
  assertInput(
    input.ttlMs > 0 && input.ttlMs <= 24 * 3600_000,
    'a ticket lives between 0 and 24 hours',
  );
  assertInput(
    PURPOSE_CODE.test(input.purpose),
    'a ticket states the purpose of use it allows as an HL7 v3 PurposeOfUse code',
  );
  for (const im of input.images) {
    assertInput(im.trace.length === 32, 'a trace id is 32 bytes');
    assertInput(im.key.length === 16 || im.key.length === 32, 'an image key is 16 or 32 bytes');
  }
  const now = input.now ?? Date.now();
  const tid = toHex(randomBytes(16));
  const exp = now + input.ttlMs;
  const cloud: CloudClaims = {
    v: 1,
    iss: input.producerId,
    aud: input.cloudId,
    tid,
    sub: input.deviceId,
    iat: now,
    exp,
    nonce: toHex(randomBytes(16)),
    purpose: input.purpose,
    images: input.images.map((i) => ({ id: i.id, trace: toHex(i.trace) })),
  };
  const keys: KeyClaims = {
    v: 1,
    iss: input.producerId,
    aud: input.deviceId,
    tid,
    iat: now,
    exp,
    images: input.images.map((i) => ({ id: i.id, key: toBase64Url(i.key) })),
  };
  return {
    tid,
    expiresAt: exp,
    cloud: await signEncrypted(cloud, input.cloudEncryptionKey, input.producer, CLOUD_TYP),
    keys: await signEncrypted(keys, input.deviceEncryptionKey, input.producer, KEYS_TYP),
  };
}

export interface ProducerLookup {
  readonly producerId: string;
  readonly key: VerifyKey;
}

export interface OpenOptions {
  /** Resolves the signing key id in the JWS header to a trusted producer (or throws with a reason). */
  readonly resolveProducer: (kid: string) => Promise<ProducerLookup>;
  /** The reader's ECDH private key (may be non-extractable). */
  readonly decryptionKey: CryptoKey;
  readonly now?: number;
}

const fail = (reason: string): never => {
  throw new ZtvError('ticket', reason);
};

async function verifyThenDecrypt(
  token: string,
  typ: string,
  opts: OpenOptions,
): Promise<{ claims: Record<string, unknown>; producer: ProducerLookup }> {
  assertInput(
    typeof token === 'string' && token.length < 1_000_000,
    'a ticket part is a compact JWS',
  );
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return fail('the ticket is not a JWS');
  }
  if (header.typ !== typ) fail(`the ticket part has type ${String(header.typ)}, expected ${typ}`);
  if (header.alg !== 'ES256' || typeof header.kid !== 'string')
    fail('the ticket is not signed with ES256 by a named key');
  const producer = await opts.resolveProducer(header.kid as string);
  let jwe: string;
  try {
    const v = await compactVerify(token, producer.key.cryptoKey, { algorithms: ['ES256'] });
    jwe = fromUtf8(v.payload);
  } catch {
    return fail("the ticket's signature does not verify: forged or altered");
  }
  let plain: Uint8Array;
  try {
    plain = (
      await compactDecrypt(jwe, opts.decryptionKey, {
        keyManagementAlgorithms: ['ECDH-ES+A256KW'],
        contentEncryptionAlgorithms: ['A256GCM'],
      })
    ).plaintext;
  } catch {
    return fail('the ticket is not encrypted to this reader');
  }
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(fromUtf8(plain)) as Record<string, unknown>;
  } catch {
    return fail('the ticket content is not JSON');
  }
  const now = opts.now ?? Date.now();
  if (claims.v !== 1) fail('the ticket has an unknown version');
  if (claims.iss !== producer.producerId)
    fail('the ticket was signed by another producer than its issuer');
  if (typeof claims.exp !== 'number' || claims.exp <= now) fail('the ticket has expired');
  if (typeof claims.iat !== 'number' || claims.iat > now + CLOCK_SKEW_MS)
    fail('the ticket is issued in the future');
  if (typeof claims.tid !== 'string' || !/^[0-9a-f]{32}$/.test(claims.tid))
    fail('the ticket id is malformed');
  if (!Array.isArray(claims.images) || claims.images.length === 0)
    fail('the ticket names no image');
  return { claims, producer };
}

/** The cloud opens its part: signature, decryption, audience, expiry, device binding. */
export async function openCloudPart(
  token: string,
  opts: OpenOptions & { readonly cloudId: string; readonly deviceId?: string },
): Promise<CloudClaims> {
  const { claims } = await verifyThenDecrypt(token, CLOUD_TYP, opts);
  if (claims.aud !== opts.cloudId) fail('the ticket is for another cloud');
  if (opts.deviceId !== undefined && claims.sub !== opts.deviceId)
    fail("the ticket is another device's");
  if (typeof claims.purpose !== 'string' || !PURPOSE_CODE.test(claims.purpose))
    fail('the ticket states no purpose of use (an HL7 v3 PurposeOfUse code)');
  if (typeof claims.nonce !== 'string' || !/^[0-9a-f]{32}$/.test(claims.nonce))
    fail('the ticket nonce is malformed');
  const images = claims.images as unknown[];
  for (const im of images) {
    const i = im as { id?: unknown; trace?: unknown };
    if (typeof i.id !== 'string' || typeof i.trace !== 'string' || !/^[0-9a-f]{64}$/.test(i.trace))
      fail('the ticket image list is malformed');
  }
  return claims as unknown as CloudClaims;
}

/** The device opens its part: the image keys, for the images the cloud part names. */
export async function openKeysPart(
  token: string,
  opts: OpenOptions & { readonly deviceId: string },
): Promise<{ claims: KeyClaims; keys: Map<string, Uint8Array> }> {
  const { claims } = await verifyThenDecrypt(token, KEYS_TYP, opts);
  if (claims.aud !== opts.deviceId) fail("the ticket is another device's");
  const keys = new Map<string, Uint8Array>();
  for (const im of claims.images as unknown[]) {
    const i = im as { id?: unknown; key?: unknown };
    if (typeof i.id !== 'string' || typeof i.key !== 'string')
      fail('the ticket key list is malformed');
    const k = fromBase64Url(i.key as string);
    if (k.length !== 16 && k.length !== 32) fail('a ticket image key has the wrong size');
    keys.set(i.id as string, k);
  }
  return { claims: claims as unknown as KeyClaims, keys };
}
