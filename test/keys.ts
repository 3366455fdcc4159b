/** Development signing keys for tests: a producer and a cloud key, and a resolver that trusts them. */
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../src/core/crypto/keys.ts';
import { staticResolver, type SignerResolver } from '../src/core/protect/signers.ts';

export interface TestKeys {
  producer: SigningKey;
  cloud: SigningKey;
  resolver: SignerResolver;
  pseudonymKey: Uint8Array;
}

export async function testKeys(alg: 'ECDSA-P256' | 'Ed25519' = 'ECDSA-P256'): Promise<TestKeys> {
  const producer = await signingKeyFromPem((await generateKeyPairPem(alg)).privatePem);
  const cloud = await signingKeyFromPem((await generateKeyPairPem(alg)).privatePem);
  return {
    producer,
    cloud,
    resolver: staticResolver({
      producer: [{ key: producer.publicKey, subject: 'CN=Test Producer' }],
      cloud: [{ key: cloud.publicKey, subject: 'CN=Test Cloud' }],
    }),
    pseudonymKey: crypto.getRandomValues(new Uint8Array(32)),
  };
}

/** A small seeded PRNG (mulberry32) so that random tamper positions are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
