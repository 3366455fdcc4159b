/**
 * A PKI directory on disk (what `ztv pki init` writes and every service loads): certificates and CRLs
 * as PEM, private keys as PKCS#8 PEM readable by the owner only, the signed trust group as JSON.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, X509Crl } from '../../core/pki/x509.ts';
import type { FlattenedJWS } from 'jose';
import { toHex } from '../../core/bytes.ts';
import { pemEncode } from '../../core/crypto/keys.ts';
import { ZtvError } from '../../core/errors.ts';
import type { DemoPki } from '../../core/pki/demo.ts';
import { crlPem } from '../../core/pki/issue.ts';
import { pkiResolver, type PkiView } from '../../core/pki/resolver.ts';
import { verifyTrustGroup, type TrustGroup } from '../../core/pki/trust-group.ts';
import type { SignerResolver } from '../../core/protect/signers.ts';
import { writeOutput } from './files.ts';

export const PARTIES = ['authority', 'producer', 'consumer', 'cloud'] as const;
export type Party = (typeof PARTIES)[number];
export const HOSPITAL_CAS = ['producer-ca', 'consumer-ca'] as const;

export const isPkiDir = (dir: string): boolean => existsSync(join(dir, 'ca.pem'));

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return pemEncode('PRIVATE KEY', new Uint8Array(await crypto.subtle.exportKey('pkcs8', key)));
}

export async function writePkiDir(
  dir: string,
  pki: DemoPki,
  pseudonymKey: Uint8Array,
): Promise<string[]> {
  mkdirSync(join(dir, 'crl'), { recursive: true, mode: 0o700 });
  const files: string[] = [];
  const put = (name: string, text: string, mode = 0o644) => {
    writeOutput(join(dir, name), text, mode);
    files.push(name);
  };
  put('ca.pem', pki.root.cert.toString('pem') + '\n');
  put('ca.key.pem', await pkcs8Pem(pki.root.privateKey), 0o600);
  for (const o of Object.values(pki.organisations)) {
    put(`${o.role}.pem`, o.cert.toString('pem') + '\n');
    put(`${o.role}.key.pem`, await pkcs8Pem(o.keys.privateKey), 0o600);
    put(`${o.role}.enc.key.pem`, await pkcs8Pem(o.encryption.privateKey), 0o600);
  }
  for (const ca of Object.values(pki.hospitalCas)) {
    put(`${ca.id}.pem`, ca.cert.toString('pem') + '\n');
    put(`${ca.id}.key.pem`, await pkcs8Pem(ca.keys.privateKey), 0o600);
  }
  for (const [i, crl] of pki.crls.entries()) {
    const issuer = i === 0 ? 'ca' : HOSPITAL_CAS[i - 1]!;
    put(join('crl', `${issuer}.crl.pem`), crlPem(crl) + '\n');
  }
  put('trust-group.json', `${JSON.stringify(pki.trustGroupJws, null, 2)}\n`);
  put('producer.pseudonym.key', `${toHex(pseudonymKey)}\n`, 0o600);
  return files;
}

const readText = (dir: string, name: string): string => {
  const path = join(dir, name);
  if (!existsSync(path)) throw new ZtvError('bad-key', `the PKI directory ${dir} has no ${name}`);
  return readFileSync(path, 'utf8');
};

export interface LoadedPki extends PkiView {
  readonly dir: string;
  readonly trustGroupJws: FlattenedJWS;
}

/** Loads and checks a PKI directory: the trust group must verify against its root. */
export async function loadPkiDir(dir: string): Promise<LoadedPki> {
  const cert = (name: string) => new X509Certificate(readText(dir, name));
  const root = cert('ca.pem');
  const intermediates = HOSPITAL_CAS.filter((n) => existsSync(join(dir, `${n}.pem`))).map((n) =>
    cert(`${n}.pem`),
  );
  const organisations = PARTIES.filter((p) => existsSync(join(dir, `${p}.pem`))).map((p) =>
    cert(`${p}.pem`),
  );
  const crlDir = join(dir, 'crl');
  const crls = existsSync(crlDir)
    ? readdirSync(crlDir)
        .filter((f) => f.endsWith('.crl.pem'))
        .map((f) => new X509Crl(readFileSync(join(crlDir, f), 'utf8')))
    : [];
  const trustGroupJws = JSON.parse(readText(dir, 'trust-group.json')) as FlattenedJWS;
  const trustGroup: TrustGroup = await verifyTrustGroup(trustGroupJws, root);
  return { dir, root, intermediates, organisations, crls, trustGroup, trustGroupJws };
}

export async function pkiDirResolver(dir: string): Promise<SignerResolver> {
  return pkiResolver(await loadPkiDir(dir));
}
