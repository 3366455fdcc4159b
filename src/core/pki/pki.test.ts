// The federation's PKI: issuance of every profile, chain validation with each rejection reason, the
// signed trust group, device enrollment from a CSR with a non-extractable key, openssl's agreement,
// and the certificate-based SignerResolver behind seal and trace verification.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samplePath } from '../../../test/samples.ts';
import { writePkiDir } from '../../services/common/pki-dir.ts';
import { signingKeyFromCryptoKeys } from '../crypto/keys.ts';
import { isZtvError } from '../errors.ts';
import { protect, traceIdFrom, traceProtected, verifyProtected } from '../protect/index.ts';
import { createDemoPki, type DemoPki } from './demo.ts';
import { readClinician } from './extensions.ts';
import {
  createCrl,
  createCsr,
  crlPem,
  createRootCa,
  generateEncryptionKeys,
  generateSigningKeys,
  issueDevice,
  issueDeviceFromCsr,
  issueHospitalCa,
  issueOrganisation,
  type Issuer,
} from './issue.ts';
import { OID } from './oids.ts';
import { pkiResolver } from './resolver.ts';
import { signTrustGroup, verifyTrustGroup } from './trust-group.ts';
import { validateCertificate, type ValidationContext } from './validate.ts';
import type { X509Certificate, X509Crl } from './x509.ts';

let pki: DemoPki;
let root: Issuer;
let consumerCa: Issuer;
let dir: string;
let device: X509Certificate;
const clinician = { id: 'dr.alice', role: 'radiologist' as const, domain: OID.domainConsumer };

const ctx = (over: Partial<ValidationContext> = {}): ValidationContext => ({
  anchors: [pki.root.cert],
  intermediates: Object.values(pki.hospitalCas).map((c) => c.cert),
  crls: pki.crls,
  usage: 'signature',
  ...over,
});

async function deviceCert(over: { validity?: { notBefore: Date; notAfter: Date } } = {}) {
  const keys = await generateSigningKeys(false);
  const enc = await generateEncryptionKeys(false);
  const encSpki = new Uint8Array(await crypto.subtle.exportKey('spki', enc.publicKey));
  return issueDevice(consumerCa, {
    clinician,
    hospital: 'Riverside',
    publicKey: keys.publicKey,
    encryptionKey: encSpki,
    ...over,
  });
}

beforeAll(async () => {
  pki = await createDemoPki();
  root = pki.root;
  const ca = pki.hospitalCas['consumer-ca'];
  consumerCa = { cert: ca.cert, privateKey: ca.keys.privateKey };
  device = await deviceCert();
  dir = mkdtempSync(join(tmpdir(), 'ztv-pki-'));
  await writePkiDir(dir, pki, new Uint8Array(32));
  writeFileSync(join(dir, 'device.pem'), device.toString('pem'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const reject = async (cert: X509Certificate, c: ValidationContext) => {
  const v = await validateCertificate(cert, c);
  expect(v.ok).toBe(false);
  return v.ok ? { code: '', reason: '' } : v;
};

describe('issuance and validation', () => {
  it('every organisation certificate validates for signatures and both TLS roles', async () => {
    for (const o of Object.values(pki.organisations))
      for (const usage of ['signature', 'tls-server', 'tls-client'] as const) {
        const v = await validateCertificate(o.cert, ctx({ usage }));
        expect(v.ok, `${o.role} ${usage}: ${v.ok ? '' : v.reason}`).toBe(true);
      }
    for (const ca of Object.values(pki.hospitalCas))
      expect((await validateCertificate(ca.cert, ctx({ usage: 'ca' }))).ok).toBe(true);
  });

  it('a device certificate chains through its hospital CA and carries the clinician', async () => {
    const v = await validateCertificate(device, ctx({ usage: 'tls-client' }));
    expect(v.ok && v.chain.length).toBe(3);
    expect(readClinician(device.getExtension(OID.clinicianExtension)!.value)).toEqual(clinician);
    expect((await reject(device, ctx({ usage: 'tls-server' }))).code).toBe('wrong-usage');
  });

  it('names every rejection: expired, not yet valid, revoked, unknown issuer, bad signature', async () => {
    const old = await deviceCert({
      validity: { notBefore: new Date('2020-01-01'), notAfter: new Date('2021-01-01') },
    });
    expect((await reject(old, ctx())).code).toBe('expired');
    const future = await deviceCert({
      validity: {
        notBefore: new Date(Date.now() + 86400_000),
        notAfter: new Date(Date.now() + 2 * 86400_000),
      },
    });
    expect((await reject(future, ctx())).code).toBe('not-yet-valid');

    const crl = await createCrl(consumerCa, [
      { serialNumber: device.serialNumber, date: new Date(Date.now() - 1000) },
    ]);
    const revoked = await reject(device, ctx({ crls: [pki.crls[0]!, crl] }));
    expect(revoked.code).toBe('revoked');
    expect(revoked.reason).toMatch(/dr\.alice was revoked/);

    const otherRootKeys = await generateSigningKeys();
    const otherRoot = await createRootCa('Elsewhere Root', otherRootKeys);
    const stranger = await issueOrganisation(
      { cert: otherRoot, privateKey: otherRootKeys.privateKey },
      {
        name: 'Stranger',
        role: 'producer',
        domain: OID.domainProducer,
        publicKey: (await generateSigningKeys()).publicKey,
      },
    );
    expect((await reject(stranger, ctx())).code).toBe('unknown-issuer');

    // Same issuer name and key id, another key: the signature gives it away.
    const impostor = await issueOrganisation(
      { cert: root.cert, privateKey: otherRootKeys.privateKey },
      {
        name: 'Impostor',
        role: 'producer',
        domain: OID.domainProducer,
        publicKey: (await generateSigningKeys()).publicKey,
      },
    );
    expect((await reject(impostor, ctx())).code).toBe('bad-signature');
  });

  it('names the structural rejections: not a CA, path too long, wrong usage, CRL missing or stale', async () => {
    const producer = pki.organisations.producer;
    const day = {
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86400_000),
    };
    const underOrg = await issueOrganisation(
      { cert: producer.cert, privateKey: producer.keys.privateKey },
      {
        name: 'Sub',
        role: 'producer',
        domain: OID.domainProducer,
        publicKey: (await generateSigningKeys()).publicKey,
        validity: day,
      },
    );
    expect((await reject(underOrg, ctx({ intermediates: [producer.cert] }))).code).toBe('not-a-ca');

    const subKeys = await generateSigningKeys();
    const subCa = await issueHospitalCa(consumerCa, {
      name: 'Sub',
      domain: OID.domainConsumer,
      publicKey: subKeys.publicKey,
      validity: day,
    });
    const deep = await issueDevice(
      { cert: subCa, privateKey: subKeys.privateKey },
      {
        clinician,
        hospital: 'Sub',
        publicKey: (await generateSigningKeys()).publicKey,
        encryptionKey: new Uint8Array(
          await crypto.subtle.exportKey('spki', (await generateEncryptionKeys()).publicKey),
        ),
        validity: { notBefore: day.notBefore, notAfter: new Date(Date.now() + 3600_000) },
      },
    );
    const crls = [
      ...pki.crls,
      await createCrl({ cert: subCa, privateKey: subKeys.privateKey }, []),
    ];
    expect((await reject(deep, ctx({ intermediates: [consumerCa.cert, subCa], crls }))).code).toBe(
      'path-too-long',
    );

    expect((await reject(pki.hospitalCas['consumer-ca'].cert, ctx())).code).toBe('wrong-usage');
    expect((await reject(device, ctx({ crls: [pki.crls[0]!] }))).code).toBe('crl-missing');
    const staleCrl = await createCrl(
      consumerCa,
      [],
      new Date(Date.now() - 10 * 86400_000),
      new Date(Date.now() - 86400_000),
    );
    expect((await reject(device, ctx({ crls: [pki.crls[0]!, staleCrl] }))).code).toBe('crl-stale');
  });
});

describe('openssl agrees', () => {
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: 'pipe' });

  it('verifies every issued certificate, intermediates included', () => {
    const out = openssl(
      'verify',
      '-CAfile',
      'ca.pem',
      'producer.pem',
      'consumer.pem',
      'cloud.pem',
      'authority.pem',
      'producer-ca.pem',
      'consumer-ca.pem',
    );
    expect(out.trim().split('\n')).toEqual(
      [
        'producer.pem',
        'consumer.pem',
        'cloud.pem',
        'authority.pem',
        'producer-ca.pem',
        'consumer-ca.pem',
      ].map((f) => `${f}: OK`),
    );
    expect(
      openssl('verify', '-CAfile', 'ca.pem', '-untrusted', 'consumer-ca.pem', 'device.pem').trim(),
    ).toBe('device.pem: OK');
    writeFileSync(
      join(dir, 'crls.pem'),
      readFileSync(join(dir, 'crl/ca.crl.pem'), 'utf8') +
        readFileSync(join(dir, 'crl/consumer-ca.crl.pem'), 'utf8'),
    );
    expect(
      openssl(
        'verify',
        '-crl_check_all',
        '-CAfile',
        'ca.pem',
        '-untrusted',
        'consumer-ca.pem',
        '-CRLfile',
        'crls.pem',
        'device.pem',
      ).trim(),
    ).toBe('device.pem: OK');
  });

  it('rejects a revoked device certificate given the CRL', async () => {
    const crl: X509Crl = await createCrl(consumerCa, [
      { serialNumber: device.serialNumber, date: new Date(Date.now() - 1000) },
    ]);
    writeFileSync(join(dir, 'revoked.crl.pem'), crlPem(crl));
    let err = '';
    try {
      openssl(
        'verify',
        '-crl_check',
        '-CAfile',
        'ca.pem',
        '-untrusted',
        'consumer-ca.pem',
        '-CRLfile',
        'revoked.crl.pem',
        'device.pem',
      );
    } catch (e) {
      err =
        String((e as { stdout?: string; stderr?: string }).stdout) +
        String((e as { stderr?: string }).stderr);
    }
    expect(err).toMatch(/certificate revoked/);
  });
});

describe('device enrollment', () => {
  it('issues from a CSR made with a non-extractable key; subject and role come from the hospital', async () => {
    const keys = await generateSigningKeys(false);
    const enc = await generateEncryptionKeys(false);
    await expect(crypto.subtle.exportKey('pkcs8', keys.privateKey)).rejects.toThrow();
    const csr = await createCsr(keys, enc.publicKey, 'whatever the browser claims');
    expect(csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
    expect(csr).not.toMatch(/PRIVATE KEY/);
    const cert = await issueDeviceFromCsr(consumerCa, csr, clinician, 'Riverside');
    expect(cert.subject).toContain('CN=dr.alice');
    expect(cert.subject).not.toContain('whatever');
    expect((await validateCertificate(cert, ctx({ usage: 'tls-client' }))).ok).toBe(true);
    const tampered = csr.replace(/A(?=[^-]{10,}-----END)/, 'B');
    const err = await issueDeviceFromCsr(consumerCa, tampered, clinician, 'Riverside').catch(
      (e: unknown) => e,
    );
    expect(isZtvError(err)).toBe(true);
  });
});

describe('trust group and the certificate resolver', () => {
  it('verifies the signed trust group and refuses altered or older ones', async () => {
    const g = await verifyTrustGroup(pki.trustGroupJws, pki.root.cert);
    expect(g.members.map((m) => m.id).sort()).toEqual([
      'authority',
      'cloud',
      'consumer',
      'consumer-ca',
      'producer',
      'producer-ca',
    ]);
    const altered = {
      ...pki.trustGroupJws,
      payload: Buffer.from(JSON.stringify({ ...g, version: 9 })).toString('base64url'),
    };
    await expect(verifyTrustGroup(altered, pki.root.cert)).rejects.toThrow(
      /not signed by the pinned authority/,
    );
    await expect(verifyTrustGroup(pki.trustGroupJws, pki.root.cert, 2)).rejects.toThrow(
      /older than/,
    );
  });

  it('resolves seal and trace signers to certified, admitted organisations — or says why not', async () => {
    const producer = await signingKeyFromCryptoKeys(
      'ECDSA-P256',
      pki.organisations.producer.keys.privateKey,
      pki.organisations.producer.keys.publicKey,
    );
    const cloud = await signingKeyFromCryptoKeys(
      'ECDSA-P256',
      pki.organisations.cloud.keys.privateKey,
      pki.organisations.cloud.keys.publicKey,
    );
    const input = new Uint8Array(readFileSync(samplePath('small/MR_small.dcm')));
    const p = await protect(input, { signer: producer, pseudonymKey: new Uint8Array(32) });
    const traced = await traceProtected(p.bytes, { signer: cloud, traceId: traceIdFrom('pki') });
    const view = {
      root: pki.root.cert,
      intermediates: [],
      organisations: Object.values(pki.organisations).map((o) => o.cert),
      crls: pki.crls,
      trustGroup: pki.trustGroup,
    };
    const ok = await verifyProtected(traced, { resolver: pkiResolver(view) });
    expect(ok.status).toBe('verified');
    expect(ok.seal?.signer?.subject).toBe(pki.organisations.producer.cert.subject);
    expect(ok.seal?.signer?.chain).toEqual([
      pki.organisations.producer.cert.subject,
      pki.root.cert.subject,
    ]);
    expect(ok.trace?.signer?.subject).toBe(pki.organisations.cloud.cert.subject);

    // Revoked producer: cannot verify, and says so.
    const crl = await createCrl(root, [
      {
        serialNumber: pki.organisations.producer.cert.serialNumber,
        date: new Date(Date.now() - 1000),
      },
    ]);
    const revoked = await verifyProtected(traced, {
      resolver: pkiResolver({ ...view, crls: [crl, ...pki.crls.slice(1)] }),
    });
    expect(revoked.status).toBe('unverifiable');
    expect(revoked.summary).toMatch(/revoked/);

    // Removed from the trust group (version 2): refused despite a valid certificate.
    const v2 = {
      version: 2,
      issuedAt: new Date().toISOString(),
      members: pki.trustGroup.members.filter((m) => m.role !== 'producer'),
    };
    const removed = await verifyProtected(traced, {
      resolver: pkiResolver({
        ...view,
        trustGroup: await verifyTrustGroup(await signTrustGroup(v2, root), pki.root.cert, 1),
      }),
    });
    expect(removed.status).toBe('unverifiable');
    expect(removed.summary).toMatch(/not in trust group version 2/);

    // A producer key used to sign a trace is the wrong role.
    const byProducer = await traceProtected(p.bytes, {
      signer: producer,
      traceId: traceIdFrom('pki'),
    });
    expect((await verifyProtected(byProducer, { resolver: pkiResolver(view) })).summary).toMatch(
      /producer certificate, not a cloud/,
    );
  });
});
