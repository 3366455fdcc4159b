// The authority service through app.inject, on SQLite and PostgreSQL: publication of the root, CRL and
// trust group; administrator-only issuance from CSRs and revocation; every refusal leaves the store as
// it was; every action is in the audit chain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, openTestDatabase, type TestDatabase } from '../../../test/databases.ts';
import { signingKeyFromCryptoKeys } from '../../core/crypto/keys.ts';
import {
  createCsr,
  createRootCa,
  generateEncryptionKeys,
  generateSigningKeys,
} from '../../core/pki/issue.ts';
import { OID } from '../../core/pki/oids.ts';
import { verifyTrustGroup } from '../../core/pki/trust-group.ts';
import { validateCertificate } from '../../core/pki/validate.ts';
import { X509Certificate, X509Crl } from '../../core/pki/x509.ts';
import { hashSecret } from '../common/secrets.ts';
import { AuditStore } from '../storage/audit-store.ts';
import { buildAuthority, authorityMigrations, type AuthorityTables } from './app.ts';

const TOKEN = 'admin-token-for-tests-0123456789';

describe.each(DIALECTS)('authority on %s', (dialect) => {
  let t: TestDatabase<AuthorityTables>;
  let built: Awaited<ReturnType<typeof buildAuthority>>;
  let root: X509Certificate;
  let audit: AuditStore;
  const auth = { authorization: `Bearer ${TOKEN}` };

  const csrFor = async () => {
    const keys = await generateSigningKeys();
    const enc = await generateEncryptionKeys();
    return createCsr(keys, enc.publicKey, 'service');
  };

  beforeAll(async () => {
    t = await openTestDatabase<AuthorityTables>(
      dialect,
      'authority_migrations',
      authorityMigrations,
    );
    const rootKeys = await generateSigningKeys();
    root = await createRootCa('Test Root', rootKeys);
    audit = new AuditStore(
      t.database,
      'authority',
      await signingKeyFromCryptoKeys('ECDSA-P256', rootKeys.privateKey, rootKeys.publicKey),
    );
    built = await buildAuthority({
      database: t.database,
      root: { cert: root, privateKey: rootKeys.privateKey },
      audit,
      adminTokenHash: await hashSecret(TOKEN),
      logLevel: 'silent',
    });
  });
  afterAll(async () => {
    await built?.app.close();
    await t?.cleanup();
  });

  it('publishes its root', async () => {
    const r = await built.app.inject({ method: 'GET', url: '/ca.pem' });
    expect(r.statusCode).toBe(200);
    expect(new X509Certificate(r.body).subject).toBe(root.subject);
  });

  it('refuses issuance without the administrator token, and logs the attempt', async () => {
    const r = await built.app.inject({
      method: 'POST',
      url: '/admin/organisations',
      payload: {
        id: 'h1',
        name: 'H1',
        role: 'producer',
        domain: OID.domainProducer,
        csr: await csrFor(),
      },
    });
    expect(r.statusCode).toBe(401);
    expect((await audit.query({ subtype: 'admin-authentication' })).length).toBe(1);
  });

  it('issues from a CSR, admits to the trust group, and the certificate validates', async () => {
    const r = await built.app.inject({
      method: 'POST',
      url: '/admin/organisations',
      headers: auth,
      payload: {
        id: 'producer-x',
        name: 'Producer X',
        role: 'producer',
        domain: OID.domainProducer,
        csr: await csrFor(),
      },
    });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { certificate: string; serial: string; trustGroupVersion: number };
    const cert = new X509Certificate(body.certificate);
    const crl = new X509Crl((await built.app.inject({ method: 'GET', url: '/crl.pem' })).body);
    expect(
      (await validateCertificate(cert, { anchors: [root], crls: [crl], usage: 'tls-server' })).ok,
    ).toBe(true);
    const group = await verifyTrustGroup(
      (await built.app.inject({ method: 'GET', url: '/trust-group' })).json(),
      root,
    );
    expect(group.version).toBe(body.trustGroupVersion);
    expect(group.members.map((m) => m.id)).toEqual(['producer-x']);
    const again = await built.app.inject({
      method: 'POST',
      url: '/admin/organisations',
      headers: auth,
      payload: {
        id: 'producer-x',
        name: 'Producer X',
        role: 'producer',
        domain: OID.domainProducer,
        csr: await csrFor(),
      },
    });
    expect(again.statusCode).toBe(409);
  });

  it('refuses a bad CSR or an invalid field with a clear message and stores nothing', async () => {
    const before = await t.database.db.selectFrom('certificates').select('serial').execute();
    const bad = await built.app.inject({
      method: 'POST',
      url: '/admin/organisations',
      headers: auth,
      payload: {
        id: 'cloud-y',
        name: 'Y',
        role: 'cloud',
        domain: OID.domainFederation,
        csr: 'not a csr',
      },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/not a PKCS#10 CSR/);
    const wrongRole = await built.app.inject({
      method: 'POST',
      url: '/admin/organisations',
      headers: auth,
      payload: {
        id: 'cloud-y',
        name: 'Y',
        role: 'hacker',
        domain: OID.domainFederation,
        csr: await csrFor(),
      },
    });
    expect(wrongRole.statusCode).toBe(400);
    expect(await t.database.db.selectFrom('certificates').select('serial').execute()).toEqual(
      before,
    );
  });

  it('revokes: the CRL lists it, validation says revoked, the trust group drops it', async () => {
    const issued = (
      await built.app.inject({
        method: 'POST',
        url: '/admin/organisations',
        headers: auth,
        payload: {
          id: 'cloud-z',
          name: 'Cloud Z',
          role: 'cloud',
          domain: OID.domainFederation,
          csr: await csrFor(),
        },
      })
    ).json() as { certificate: string; serial: string };
    const r = await built.app.inject({
      method: 'POST',
      url: '/admin/revocations',
      headers: auth,
      payload: { serial: issued.serial, reason: 'key compromise' },
    });
    expect(r.statusCode).toBe(200);
    const crl = new X509Crl((await built.app.inject({ method: 'GET', url: '/crl.pem' })).body);
    const v = await validateCertificate(new X509Certificate(issued.certificate), {
      anchors: [root],
      crls: [crl],
      usage: 'signature',
    });
    expect(!v.ok && v.code).toBe('revoked');
    const group = await verifyTrustGroup(
      (await built.app.inject({ method: 'GET', url: '/trust-group' })).json(),
      root,
    );
    expect(group.members.map((m) => m.id)).toEqual(['producer-x']);
    expect(
      (
        await built.app.inject({
          method: 'POST',
          url: '/admin/revocations',
          headers: auth,
          payload: { serial: issued.serial, reason: 'again' },
        })
      ).statusCode,
    ).toBe(409);
  });

  it('removes a member from the trust group without revoking it', async () => {
    const r = await built.app.inject({
      method: 'POST',
      url: '/admin/trust-group/removals',
      headers: auth,
      payload: { member: 'producer-x' },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().members).toEqual([]);
    expect(
      (
        await built.app.inject({
          method: 'POST',
          url: '/admin/trust-group/removals',
          headers: auth,
          payload: { member: 'producer-x' },
        })
      ).statusCode,
    ).toBe(404);
    const report = await audit.verify();
    expect(report.ok).toBe(true);
    expect((await audit.all()).map((x) => x.subtype)).toEqual([
      'admin-authentication',
      'certificate-issued',
      'certificate-issued',
      'certificate-revoked',
      'trust-group-removal',
    ]);
  });
});
