/**
 * Byte-identity check of `protect` between trees (docs/protection.md, "Fewer passes per image"):
 * protects every sample under the folders given with fixed randomness (`crypto.getRandomValues`
 * seeded, an Ed25519 seal, a fixed time) and prints, per file, digests of everything that does not
 * depend on the CMS content key (which WebCrypto's generateKey draws): the image key, the ciphertext
 * with its container planes cleared, the container fields but the protected header digest, the clear
 * header but the encrypted attributes, and the report; or the refusal. Run it for two trees and diff:
 *
 *   openssl genpkey -algorithm ed25519 -out /tmp/seal.pem
 *   git archive <ref> src package.json tsconfig.json | tar -x -C /tmp/old && ln -s $PWD/node_modules /tmp/old/
 *   npx tsx scripts/protect-identity.ts /tmp/seal.pem /tmp/old small odd large series/... > old.txt
 *   npx tsx scripts/protect-identity.ts /tmp/seal.pem . small odd large series/... > new.txt
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sampleFiles, SAMPLES } from '../test/samples.ts';
import type * as Keys from '../src/core/crypto/keys.ts';
import type * as Container from '../src/core/protect/container.ts';
import type * as Digests from '../src/core/protect/digests.ts';
import type * as Protect from '../src/core/protect/index.ts';

const [pemFile, tree, ...folders] = process.argv.slice(2);
if (!pemFile || !tree || folders.length === 0) {
  console.error('usage: protect-identity.ts SEAL.pem TREE FOLDER...');
  process.exit(64);
}
const dir = resolve(tree);
const codec = (await import(`${dir}/src/core/protect/index.ts`)) as typeof Protect;
const { signingKeyFromPem } = (await import(`${dir}/src/core/crypto/keys.ts`)) as typeof Keys;
const { clearContainer } = (await import(`${dir}/src/core/protect/digests.ts`)) as typeof Digests;
const { regionSamples } = (await import(
  `${dir}/src/core/protect/container.ts`
)) as typeof Container;
const signer = await signingKeyFromPem(readFileSync(pemFile, 'utf8'));

let seed = 1;
const seeded = <T extends ArrayBufferView | null>(a: T): T => {
  if (!a) return a;
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (let i = 0; i < b.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    b[i] = seed >>> 24;
  }
  return a;
};
Object.defineProperty(crypto, 'getRandomValues', { value: seeded });

const h = (b: Uint8Array | string): string =>
  createHash('sha256').update(b).digest('hex').slice(0, 16);
const hex = (_k: string, v: unknown): unknown =>
  v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v;

for (const file of folders.flatMap((f) => sampleFiles(f))) {
  seed = 12345;
  const name = file.slice(SAMPLES.length);
  try {
    const p = await codec.protect(new Uint8Array(readFileSync(file)), {
      signer,
      pseudonymKey: new Uint8Array(32).fill(7),
      now: new Date(1700000000000),
    });
    const img = codec.readProtected(p.bytes);
    const c = img.container!;
    const K = regionSamples(c.fields.containerBytes, img.L);
    const masked = clearContainer(img.data.slice(), img.g, K, img.L);
    const fields = JSON.stringify({ ...c.fields, protectedHeaderDigest: undefined }, hex);
    const header = img.dataset
      .elements()
      .filter((e) => e.tag !== 0x04000500 && e.tag !== img.info.pixelTag)
      .map((e) => `${e.tag}:${e.vr}:${e.value ? h(e.value) : ''}`)
      .join(',');
    console.log(
      `${name} key=${h(p.imageKey)} ct=${h(masked)} fields=${h(fields)} header=${h(header)} ` +
        `report=${h(JSON.stringify(p.report))} length=${p.bytes.length}`,
    );
  } catch (e) {
    console.log(`${name} error ${(e as Error).message}`);
  }
}
