/**
 * Key directories for the CLI. `ztv dev-keys DIR` writes a development key set (authority, producer,
 * cloud) as PEM, plus the producer's pseudonym secret; commands load only the keys they need, and
 * verification trusts the public keys found there.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { writeOutput } from './common.ts';

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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  for (const party of PARTIES) {
    const pair = await generateKeyPairPem(alg);
    writeOutput(join(dir, `${party}.key.pem`), pair.privatePem, 0o600);
    writeOutput(join(dir, `${party}.pub.pem`), pair.publicPem);
    written.push(`${party}.key.pem`, `${party}.pub.pem`);
  }
  writeOutput(
    join(dir, PSEUDONYM_FILE),
    `${toHex(crypto.getRandomValues(new Uint8Array(32)))}\n`,
    0o600,
  );
  written.push(PSEUDONYM_FILE);
  return written;
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
