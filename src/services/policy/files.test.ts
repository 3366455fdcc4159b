// Policy files as trusted data: the services load only files signed by the organisation accountable for
// them, with a certificate for the file's domain, in the trust group — and refuse an unsigned file, a
// file altered after signing, one signed by another hospital, by the cloud, or by an organisation the
// trust group does not admit. The demo policies, signed with the demo PKI, load.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../../test/samples.ts';
import { randomBytes } from '../../core/bytes.ts';
import { pemEncode } from '../../core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import {
  generateEncryptionKeys,
  generateSigningKeys,
  issueOrganisation,
} from '../../core/pki/issue.ts';
import { OID } from '../../core/pki/oids.ts';
import { loadPkiDir, writePkiDir } from '../common/pki-dir.ts';
import { LiveTrust } from '../common/trust.ts';
import { loadPolicyEngine } from './load.ts';
import { loadSignedPolicies, policyFileSigner, signDemoPolicies, signPolicy } from './files.ts';
import { policySignerResolver } from './resolvers.ts';

let dir: string;
let pki: DemoPki;
let resolve: ReturnType<typeof policySignerResolver>;
const pkiDir = () => join(dir, 'pki');

const keyPem = async (k: CryptoKey) =>
  pemEncode('PRIVATE KEY', new Uint8Array(await crypto.subtle.exportKey('pkcs8', k)));
const signerOf = async (org: 'authority' | 'producer' | 'consumer' | 'cloud') =>
  policyFileSigner(
    readFileSync(join(pkiDir(), `${org}.key.pem`), 'utf8'),
    readFileSync(join(pkiDir(), `${org}.pem`), 'utf8'),
  );

/** A policy directory with the demo's two files, each signed as `sign` says (or not at all). */
async function policyDir(
  name: string,
  sign: Record<string, 'authority' | 'producer' | 'consumer' | 'cloud' | undefined>,
  edit: (file: string, json: Record<string, unknown>) => void = () => undefined,
): Promise<string> {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  for (const f of ['federation.json', 'producer-hospital.json']) {
    const json = JSON.parse(readFileSync(join(REPO_ROOT, 'policies', f), 'utf8')) as Record<
      string,
      unknown
    >;
    edit(f, json);
    writeFileSync(join(d, f), JSON.stringify(json, null, 2));
    const by = sign[f];
    if (by) await signPolicy(join(d, f), await signerOf(by));
  }
  return d;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-policy-files-'));
  pki = await createDemoPki();
  await writePkiDir(pkiDir(), pki, randomBytes(32));
  const loaded = await loadPkiDir(pkiDir());
  resolve = policySignerResolver(() => loaded);
}, 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIGNED = { 'federation.json': 'authority', 'producer-hospital.json': 'producer' } as const;

describe('signed policy files', () => {
  it('the demo policies signed with the demo PKI load, parents first, and the services start on them', async () => {
    const out = join(dir, 'demo');
    const written = await signDemoPolicies(join(REPO_ROOT, 'policies'), out, pkiDir());
    expect(written.map((p) => p.slice(out.length + 1)).sort()).toEqual([
      'federation.json.jws',
      'producer-hospital.json.jws',
    ]);
    const files = await loadSignedPolicies(out, resolve);
    expect(files.map((f) => f.domain)).toEqual([OID.domainFederation, OID.domainProducer]);
    const engine = await loadPolicyEngine(
      new LiveTrust(await loadPkiDir(pkiDir()), undefined, {}),
      {
        dir: out,
        directories: {},
      },
    );
    expect([...engine.purposes(OID.domainProducer).keys()]).toContain('TREAT');
  });

  it('a detached JWS over the exact bytes: the file as written stays readable JSON', async () => {
    const d = await policyDir('detached', SIGNED);
    const jws = readFileSync(join(d, 'producer-hospital.json.jws'), 'utf8').trim();
    expect(jws).toMatch(/^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+$/);
    const header = JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    expect(header).toMatchObject({ alg: 'ES256', typ: 'ztv-policy+jws' });
    expect((header.x5c as string[]).length).toBe(1);
  });

  it.each([
    ['unsigned', { 'federation.json': 'authority' }, /producer-hospital\.json: is not signed/],
    [
      'signed by another hospital',
      { ...SIGNED, 'producer-hospital.json': 'consumer' },
      /producer-hospital\.json: it is signed by consumer, but producer is accountable for it/,
    ],
    [
      'signed by the cloud',
      { ...SIGNED, 'federation.json': 'cloud' },
      /federation\.json: it is signed by the cloud, which makes no policy/,
    ],
    [
      'the federation policy signed by a hospital',
      { ...SIGNED, 'federation.json': 'producer' },
      /federation\.json: it is signed by producer, but authority is accountable for it/,
    ],
  ] as const)('refuses a policy file %s', async (name, sign, why) => {
    const d = await policyDir(name.replace(/ /g, '-'), sign);
    await expect(loadSignedPolicies(d, resolve)).rejects.toThrow(why);
  });

  it('refuses a file that names another hospital as its authority, for a domain not its own', async () => {
    const d = await policyDir(
      'foreign-domain',
      { ...SIGNED, 'producer-hospital.json': 'consumer' },
      (f, j) => {
        if (f === 'producer-hospital.json')
          j.authority = {
            organization: 'consumer',
            officer: 'the consumer claims the producer domain',
          };
      },
    );
    await expect(loadSignedPolicies(d, resolve)).rejects.toThrow(
      /signed by consumer, whose certificate is for domain 1\.3\.6\.1\.4\.1\.32473\.71\.2\.2, not 1\.3\.6\.1\.4\.1\.32473\.71\.2\.1/,
    );
  });

  it('refuses a file altered after it was signed (one rule relaxed)', async () => {
    const d = await policyDir('altered', SIGNED);
    const path = join(d, 'producer-hospital.json');
    const json = JSON.parse(readFileSync(path, 'utf8')) as {
      rules: { id: string; purposes?: string[] }[];
    };
    json.rules.find((r) => r.id === 'ATTENDING')!.purposes!.push('HMARKT');
    writeFileSync(path, JSON.stringify(json, null, 2));
    await expect(loadSignedPolicies(d, resolve)).rejects.toThrow(
      /producer-hospital\.json: its signature does not verify: the file was altered after it was signed/,
    );
    // The signature of one file does not cover another.
    const swap = await policyDir('swapped', SIGNED);
    copyFileSync(join(swap, 'federation.json.jws'), join(swap, 'producer-hospital.json.jws'));
    await expect(loadSignedPolicies(swap, resolve)).rejects.toThrow(/altered after it was signed/);
  });

  it('refuses a signer the trust group does not admit, even with a certificate of the root', async () => {
    const keys = await generateSigningKeys();
    const cert = await issueOrganisation(
      { cert: pki.root.cert, privateKey: pki.root.privateKey },
      {
        name: 'Saint-Louis Producer Hospital (old key)',
        role: 'producer',
        domain: OID.domainProducer,
        publicKey: keys.publicKey,
        encryptionKey: (await generateEncryptionKeys()).publicKey,
      },
    );
    const d = await policyDir('outsider', { 'federation.json': 'authority' });
    await signPolicy(
      join(d, 'producer-hospital.json'),
      await policyFileSigner(await keyPem(keys.privateKey), cert.toString('pem')),
    );
    await expect(loadSignedPolicies(d, resolve)).rejects.toThrow(
      /its signer is not trusted: .*not in trust group/,
    );
  });

  it('a service refuses to start on an unsigned policy', async () => {
    const d = await policyDir('service-unsigned', { 'federation.json': 'authority' });
    await expect(
      loadPolicyEngine(new LiveTrust(await loadPkiDir(pkiDir()), undefined, {}), {
        dir: d,
        directories: {},
      }),
    ).rejects.toThrow(/is not signed/);
  });
});
