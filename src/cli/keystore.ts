/**
 * Key directories for the CLI. `ztv dev-keys DIR` writes a development key set (authority, producer,
 * cloud) as PEM, plus the producer's pseudonym secret; commands load only the keys they need, and
 * verification trusts the public keys found there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fromHex, toHex } from '../core/bytes.ts';
import {
  generateKeyPairPem,
  signingKeyFromPem,
  verifyKeyFromPem,
  type SigAlg,
  type SigningKey,
} from '../core/crypto/keys.ts';
import { ZtvError } from '../core/errors.ts';
import { staticResolver, type SignerResolver } from '../core/protect/signers.ts';
import { isPkiDir, pkiDirResolver } from '../services/common/pki-dir.ts';
import { ensureDir, type Output, writeOutputs } from '../services/common/files.ts';

export const PARTIES = ['authority', 'producer', 'cloud'] as const;
export type Party = (typeof PARTIES)[number];

const PSEUDONYM_FILE = 'producer.pseudonym.key';

function readKeyFile(dir: string, name: string): string {
  const path = join(dir, name);
  if (!existsSync(dir))
    throw new ZtvError(
      'bad-key',
      `key directory ${dir} does not exist (create one with: ztv dev-keys ${dir})`,
    );
  if (!existsSync(path))
    throw new ZtvError(
      'bad-key',
      `key directory ${dir} has no ${name} (create one with: ztv dev-keys ${dir})`,
    );
  return readFileSync(path, 'utf8');
}

export async function writeDevKeys(dir: string, alg: SigAlg, force: boolean): Promise<string[]> {
  if (!force && PARTIES.some((p) => existsSync(join(dir, `${p}.key.pem`))))
    throw new ZtvError('bad-input', `${dir} already holds keys; use --force to replace them`);
  const outputs: Output[] = [];
  for (const party of PARTIES) {
    const pair = await generateKeyPairPem(alg);
    outputs.push(
      { path: join(dir, `${party}.key.pem`), data: pair.privatePem, mode: 0o600 },
      { path: join(dir, `${party}.pub.pem`), data: pair.publicPem },
    );
  }
  outputs.push({
    path: join(dir, PSEUDONYM_FILE),
    data: `${toHex(crypto.getRandomValues(new Uint8Array(32)))}\n`,
    mode: 0o600,
  });
  // The whole set or nothing: a half-written key directory would fail later, less clearly.
  ensureDir(dir, 0o700);
  writeOutputs(outputs);
  return outputs.map((o) => basename(o.path));
}

export const signingKey = (dir: string, party: Party): Promise<SigningKey> =>
  signingKeyFromPem(readKeyFile(dir, `${party}.key.pem`));

export function pseudonymKey(dir: string): Uint8Array {
  const text = readKeyFile(dir, PSEUDONYM_FILE).trim();
  if (!/^[0-9a-f]{32,}$/i.test(text))
    throw new ZtvError(
      'bad-key',
      `${join(dir, PSEUDONYM_FILE)} must hold at least 16 bytes in hex`,
    );
  return fromHex(text);
}

/**
 * What verification trusts: with a PKI directory (ca.pem present), certificates validated to its root,
 * its CRLs and trust group; with development keys, the producer and cloud public keys found there.
 */
export async function resolverFor(dir: string): Promise<SignerResolver> {
  if (isPkiDir(dir)) return pkiDirResolver(dir);
  const load = async (party: Party) => ({
    key: await verifyKeyFromPem(readKeyFile(dir, `${party}.pub.pem`)),
    subject: `${party} (development key in ${dir})`,
  });
  return staticResolver({ producer: [await load('producer')], cloud: [await load('cloud')] });
}
