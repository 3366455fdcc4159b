// The consumer hospital through app.inject, on SQLite and PostgreSQL: sign-in, device enrollment from
// a CSR made with non-extractable keys (only public material is sent), the certificate's identity
// from the hospital, device revocation that sessions then refuse, and the audit of it all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, openTestDatabase, type TestDatabase } from '../../../test/databases.ts';
import { signingKeyFromCryptoKeys } from '../../core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import { readClinician } from '../../core/pki/extensions.ts';
import { createCsr, generateEncryptionKeys, generateSigningKeys } from '../../core/pki/issue.ts';
import { OID } from '../../core/pki/oids.ts';
import { deviceValidator } from '../../core/session/peers.ts';
import { X509Certificate, X509Crl } from '../../core/pki/x509.ts';
import type { LoadedPki } from '../common/pki-dir.ts';
import { hashSecret } from '../common/secrets.ts';
import { AuditStore } from '../storage/audit-store.ts';
import { verifyRoleAssignment } from '../../core/policy/statements.ts';
import {
  addCare,
  addClinician,
  buildConsumer,
  consumerMigrations,
  type ConsumerTables,
} from './app.ts';

let pki: DemoPki;
beforeAll(async () => {
  pki = await createDemoPki();
});

describe.each(DIALECTS)('consumer hospital on %s', (dialect) => {
  let t: TestDatabase<ConsumerTables>;
  let app: Awaited<ReturnType<typeof buildConsumer>>;
  let audit: AuditStore;
  let clock = Date.now();
  let view: LoadedPki;
  let orgSigner: Awaited<ReturnType<typeof signingKeyFromCryptoKeys>>;

  beforeAll(async () => {
    t = await openTestDatabase<ConsumerTables>(dialect, 'consumer_migrations', consumerMigrations);
    const org = pki.organisations.consumer;
    orgSigner = await signingKeyFromCryptoKeys(
      'ECDSA-P256',
      org.keys.privateKey,
      org.keys.publicKey,
    );
    audit = new AuditStore(t.database, 'consumer', orgSigner);
    await addClinician(t.database.db, {
      id: 'dr.alice',
      name: 'Alice Martin',
      role: 'radiologist',
      domain: OID.domainConsumer,
      passwordHash: await hashSecret('correct horse'),
    });
    const ca = pki.hospitalCas['consumer-ca'];
    view = {
      dir: '',
      root: pki.root.cert,
      intermediates: Object.values(pki.hospitalCas).map((c) => c.cert),
      organisations: Object.values(pki.organisations).map((o) => o.cert),
      crls: pki.crls,
      trustGroup: pki.trustGroup,
      trustGroupJws: pki.trustGroupJws,
    };
    app = await buildConsumer({
      database: t.database,
      hospitalName: 'Riverside Consumer Hospital',
      deviceCa: { cert: ca.cert, privateKey: ca.keys.privateKey },
      pki: () => view,
      audit,
      memberId: 'consumer',
      signer: orgSigner,
      logLevel: 'silent',
      now: () => clock,
    });
  });
  afterAll(async () => {
    await app?.close();
    await t?.cleanup();
  });

  const login = async (password = 'correct horse') =>
    app.inject({ method: 'POST', url: '/login', payload: { user: 'dr.alice', password } });

  it('refuses a wrong password or unknown user with the same message, and logs both', async () => {
    const wrong = await login('wrong');
    const unknown = await app.inject({
      method: 'POST',
      url: '/login',
      payload: { user: 'nobody', password: 'x' },
    });
    expect([wrong.statusCode, unknown.statusCode]).toEqual([401, 401]);
    expect(wrong.json().message).toBe(unknown.json().message);
    expect((await audit.query({ subtype: 'login-failed' })).length).toBe(2);
  });

  it('enrols a device: only public material is sent, identity comes from the hospital', async () => {
    const token = (await login()).json().token as string;
    const keys = await generateSigningKeys(false);
    const enc = await generateEncryptionKeys(false);
    const csr = await createCsr(keys, enc.publicKey, 'Mallory the Admin');
    const payload = { csr };
    // Nothing private exists to be sent: the keys cannot be exported at all.
    await expect(crypto.subtle.exportKey('pkcs8', keys.privateKey)).rejects.toThrow();
    await expect(crypto.subtle.exportKey('pkcs8', enc.privateKey)).rejects.toThrow();
    expect(JSON.stringify(payload)).not.toMatch(/PRIVATE/);
    const r = await app.inject({
      method: 'POST',
      url: '/devices',
      headers: { authorization: `Bearer ${token}` },
      payload,
    });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { certificate: string; chain: string[]; thumbprint: string };
    const cert = new X509Certificate(body.certificate);
    expect(cert.subject).toContain('CN=dr.alice');
    expect(cert.subject).not.toContain('Mallory');
    expect(readClinician(cert.getExtension(OID.clinicianExtension)!.value).role).toBe(
      'radiologist',
    );
    expect(new Uint8Array(cert.publicKey.rawData)).toEqual(
      new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey)),
    );
    const check = await deviceValidator(() => view)(body.chain);
    expect(check.ok).toBe(true);

    // Revoking the device: the hospital's CRL lists it and sessions refuse it.
    const rev = await app.inject({
      method: 'POST',
      url: '/devices/revocations',
      headers: { authorization: `Bearer ${token}` },
      payload: { serial: cert.serialNumber },
    });
    expect(rev.statusCode).toBe(200);
    const crl = new X509Crl((await app.inject({ method: 'GET', url: '/crl.pem' })).body);
    view = { ...view, crls: [...pki.crls.filter((c) => c.issuer !== crl.issuer), crl] };
    const refused = await deviceValidator(() => view)(body.chain);
    expect(!refused.ok && refused.reason).toMatch(/dr\.alice was revoked/);
    expect((await audit.all()).map((r) => r.subtype)).toEqual([
      'login-failed',
      'login-failed',
      'login',
      'device-enrolled',
      'device-revoked',
    ]);
  });

  it('issues signed role assignments for the care relationships it records', async () => {
    await addCare(t.database.db, {
      clinician: 'dr.alice',
      role: 'reading-radiologist',
      study: '1.2.3',
      until: clock + 3600_000,
    });
    await addCare(t.database.db, {
      clinician: 'dr.alice',
      role: 'attending',
      patient: 'P9',
      until: clock - 1,
    }); // over
    const token = (await login()).json().token as string;
    const r = await app.inject({
      method: 'POST',
      url: '/role-assignments',
      headers: { authorization: `Bearer ${token}` },
    });
    const { statements } = r.json() as { statements: string[] };
    expect(statements.length).toBe(1);
    const a = await verifyRoleAssignment(
      statements[0]!,
      async (kid) =>
        kid === orgSigner.publicKey.keyIdHex
          ? { id: 'consumer', key: orgSigner.publicKey.cryptoKey }
          : undefined,
      clock,
    );
    expect(a).toMatchObject({
      iss: 'consumer',
      sub: 'dr.alice',
      role: 'reading-radiologist',
      study: '1.2.3',
    });
    expect((await app.inject({ method: 'POST', url: '/role-assignments' })).statusCode).toBe(401);
  });

  it('refuses enrollment without a valid sign-in, and after it expires', async () => {
    const keys = await generateSigningKeys(false);
    const csr = await createCsr(keys, (await generateEncryptionKeys(false)).publicKey, 'x');
    expect(
      (await app.inject({ method: 'POST', url: '/devices', payload: { csr } })).statusCode,
    ).toBe(401);
    const token = (await login()).json().token as string;
    clock += 9 * 3600_000;
    const late = await app.inject({
      method: 'POST',
      url: '/devices',
      headers: { authorization: `Bearer ${token}` },
      payload: { csr },
    });
    expect(late.statusCode).toBe(401);
    expect(late.json().error).toBe('expired');
  });
});
