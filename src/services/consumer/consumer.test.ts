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
  it('throttles failed sign-ins per account: growing delays, then a lockout the right password does not pass, each logged naming the account', async () => {
    const from = (await audit.all()).length;
    // 50 wrong passwords as fast as they go (issue 16 §3), then the right one: three are heard, the
    // rest are refused at once (429) without checking the password — the right one too.
    const fast: number[] = [];
    for (let i = 0; i < 50; i++) {
      fast.push((await login(`wrong ${i}`)).statusCode);
      clock += 10;
    }
    expect(fast.slice(0, 3)).toEqual([401, 401, 401]);
    expect(fast.slice(3).every((s) => s === 429)).toBe(true);
    const early = await login();
    expect(early.statusCode).toBe(429);
    expect(early.json()).toMatchObject({
      error: 'throttled',
      message: expect.stringMatching(
        /^too many failed sign-ins for this account: wait \d+ seconds/,
      ),
    });
    // An attacker who waits each Retry-After: the delays double, and the tenth failure locks it.
    const waits: number[] = [];
    let heard = 3;
    while (heard < 10) {
      const r = await login(`patient guess ${heard}`);
      if (r.statusCode === 429) {
        const wait = Number(r.headers['retry-after']);
        waits.push(wait);
        clock += wait * 1000;
      } else {
        expect(r.statusCode).toBe(401);
        heard++;
      }
    }
    expect(waits.slice(0, 4)).toEqual([1, 2, 4, 8]);
    const locked = await login();
    expect(locked.statusCode).toBe(429);
    expect(locked.json()).toMatchObject({
      error: 'locked',
      message: expect.stringMatching(
        /^this account is locked after 10 failed sign-ins: try again in 15 minutes/,
      ),
    });
    const records = (await audit.all()).slice(from);
    const failed = records.filter((r) => r.subtype === 'login-failed');
    expect(failed).toHaveLength(10);
    expect(failed.every((r) => r.actor.id === 'dr.alice')).toBe(true);
    expect(failed.at(-1)!.details).toMatchObject({ reason: 'wrong-password', failures: 10 });
    const throttled = records.filter((r) => r.subtype === 'login-throttled');
    expect(throttled.length).toBeGreaterThan(47);
    expect(throttled.at(-1)).toMatchObject({
      actor: { id: 'dr.alice' },
      details: { by: 'account', locked: true },
    });
    // Once the lockout is over, the right password signs in and clears the count.
    clock += 15 * 60_000 + 1000;
    expect((await login()).statusCode).toBe(200);
    expect((await login('wrong again')).statusCode).toBe(401);
    expect((await login()).statusCode).toBe(200);
  });

  it('throttles failed sign-ins per address across accounts, naming no unknown account', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await app.inject({
        method: 'POST',
        url: '/login',
        payload: { user: `nobody-${i}`, password: 'guess' },
      });
      statuses.push(r.statusCode);
    }
    // 10 free failures from one address, then it must wait, whatever account it names.
    expect(statuses).toEqual([...Array<number>(10).fill(401), 429, 429]);
    const r = await app.inject({
      method: 'POST',
      url: '/login',
      payload: { user: 'nobody-else', password: 'guess' },
    });
    expect(r.statusCode).toBe(429);
    expect(r.json().message).toMatch(
      /^too many failed sign-ins for this computer: wait \d+ seconds/,
    );
    const unknown = (await audit.all()).filter((x) => x.subtype === 'login-failed').at(-1)!;
    // An unknown account is not named: what was typed may be a password.
    expect(unknown.actor.id).toBe('unknown');
    expect(unknown.details).toMatchObject({ reason: 'unknown-account' });
    expect(JSON.stringify(unknown)).not.toContain('nobody');
    clock += 16 * 60_000;
  });
});
