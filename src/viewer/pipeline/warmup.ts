/**
 * The material of a decode worker's JIT warm-up (job.ts `warmUp`, run once when the worker receives
 * the trust, after sign-in and long before a ticket): a synthetic CT slice of the usual 512x512, 12
 * bits stored, protected and traced by throw-away signers, and a ticket key part as large as a CT
 * series' (150 image keys, one of them the slice's) issued to a throw-away device key. It is made at
 * build time (scripts/vite-plugins.ts, `virtual:ztv-warmup`), so that no producer or cloud code —
 * protecting, tracing, issuing tickets — ships in the clinician's worker; here it is only opened, by
 * the code a study runs. Nothing of it is kept or shown. Why a warm-up at all: docs/viewer.md.
 */
import material from 'virtual:ztv-warmup';
import { fromBase64 } from '../../core/bytes.ts';
import { verifyKeyFromSpki } from '../../core/crypto/keys.ts';
import { ECDH_KEY } from '../../core/pki/issue.ts';
import { staticResolver, type SignerResolver } from '../../core/protect/index.ts';
import { openKeysPart } from '../../core/ticket/ticket.ts';

/** What the build bakes into the worker (JSON): public keys and throw-away secrets only. */
export interface WarmUpMaterial {
  /** The traced container as the cloud would serve it (base64; no `data:` URL, which the viewer's
   * content security policy does not let a worker fetch). */
  readonly container: string;
  /** The image id of the synthetic slice in the ticket. */
  readonly ref: string;
  /** The ticket's key part (compact JWS), for `deviceId`. */
  readonly ticket: string;
  readonly deviceId: string;
  /** The throw-away device's ECDH P-256 private key. */
  readonly deviceKey: JsonWebKey;
  /** SPKI (base64) of the throw-away producer (seal, ticket) and cloud (trace) signing keys. */
  readonly producer: string;
  readonly cloud: string;
  readonly producerId: string;
  /** When the ticket was issued (ms): it is opened as of then, not as of today. */
  readonly issuedAt: number;
}

/** The synthetic image with what opens and verifies it. */
export interface WarmUpImage {
  readonly ref: string;
  readonly bytes: Uint8Array;
  readonly imageKey: Uint8Array;
  /** Knows exactly the two throw-away signers. */
  readonly resolver: SignerResolver;
}

/**
 * Opens the warm-up ticket as the worker opens a real one — JWS verification, ECDH-ES key
 * agreement, AES-GCM, the claim checks (a study's first ticket otherwise pays for that code cold, in
 * every worker at once) — and returns the synthetic image with its key; the other keys are wiped.
 */
export async function openWarmUp(m: WarmUpMaterial = material): Promise<WarmUpImage> {
  const [producer, cloud, deviceKey] = await Promise.all([
    verifyKeyFromSpki(fromBase64(m.producer)),
    verifyKeyFromSpki(fromBase64(m.cloud)),
    crypto.subtle.importKey('jwk', m.deviceKey, ECDH_KEY, false, ['deriveBits']),
  ]);
  const { keys } = await openKeysPart(m.ticket, {
    resolveProducer: async () => ({ producerId: m.producerId, key: producer }),
    decryptionKey: deviceKey,
    deviceId: m.deviceId,
    now: m.issuedAt,
  });
  const imageKey = keys.get(m.ref);
  if (!imageKey) throw new Error('the warm-up ticket has no key for the warm-up image');
  for (const [ref, k] of keys) if (ref !== m.ref) k.fill(0);
  const resolver = staticResolver({
    producer: [{ key: producer, subject: 'CN=warm-up' }],
    cloud: [{ key: cloud, subject: 'CN=warm-up' }],
  });
  return { ref: m.ref, bytes: fromBase64(m.container), imageKey, resolver };
}
