// Device enrollment in Debian's Chromium against a real consumer hospital service: the browser makes
// non-extractable keys, sends a CSR, stores the keys and chain in IndexedDB — and nothing but public
// keys ever crosses the wire.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signingKeyFromCryptoKeys } from '../src/core/crypto/keys.ts';
import { createDemoPki } from '../src/core/pki/demo.ts';
import { OID } from '../src/core/pki/oids.ts';
import { hashSecret } from '../src/services/common/secrets.ts';
import {
  addClinician,
  buildConsumer,
  consumerMigrations,
  type ConsumerTables,
} from '../src/services/consumer/app.ts';
import { AuditStore } from '../src/services/storage/audit-store.ts';
import { openDatabase, type Database } from '../src/services/storage/db.ts';
import { launchChromium } from './browser.ts';
import { servePages, type ServedPages } from './pages-server.ts';

let pages: ServedPages;
let browser: Browser;
let consumer: Awaited<ReturnType<typeof buildConsumer>>;
let consumerUrl: string;
let database: Database<ConsumerTables>;
let dir: string;

beforeAll(async () => {
  pages = await servePages('enroll.html');
  dir = mkdtempSync(join(tmpdir(), 'ztv-e2e-consumer-'));
  database = await openDatabase<ConsumerTables>({
    file: join(dir, 'consumer.sqlite'),
    migrationTable: 'consumer_migrations',
    migrations: consumerMigrations,
  });
  const pki = await createDemoPki();
  const org = pki.organisations.consumer;
  const ca = pki.hospitalCas['consumer-ca'];
  const orgSigner = await signingKeyFromCryptoKeys(
    'ECDSA-P256',
    org.keys.privateKey,
    org.keys.publicKey,
  );
  await addClinician(database.db, {
    id: 'dr.alice',
    name: 'Alice',
    role: 'radiologist',
    domain: OID.domainConsumer,
    passwordHash: await hashSecret('demo-password'),
  });
  consumer = await buildConsumer({
    database,
    hospitalName: 'Riverside',
    deviceCa: { cert: ca.cert, privateKey: ca.keys.privateKey },
    pki: () => ({
      dir,
      root: pki.root.cert,
      intermediates: [],
      organisations: [],
      crls: pki.crls,
      trustGroup: pki.trustGroup,
      trustGroupJws: pki.trustGroupJws,
    }),
    audit: new AuditStore(database, 'consumer', orgSigner),
    memberId: 'consumer',
    signer: orgSigner,
    corsOrigins: [pages.base],
    logLevel: 'silent',
  });
  await consumer.listen({ host: '127.0.0.1', port: 0 });
  consumerUrl = `http://127.0.0.1:${(consumer.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await consumer?.close();
  await database?.close();
  await pages?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('device enrollment in the browser', () => {
  it('sends only public keys and keeps non-extractable keys in IndexedDB', async () => {
    const page = await browser.newPage();
    const sent: string[] = [];
    page.on('request', (r) => {
      const body = r.postData();
      if (body) sent.push(body);
    });
    await page.goto(`${pages.base}/e2e/pages/enroll.html`);
    await page.waitForFunction(() => typeof window.enrolDevice === 'function');
    const result = await page.evaluate(
      ([url]) => window.enrolDevice(url!, 'dr.alice', 'demo-password'),
      [consumerUrl],
    );
    expect(result).toEqual({ subject: 'CN=dr.alice', chainLength: 2 });
    // What crossed the wire: the sign-in and one CSR.
    expect(sent.length).toBe(2);
    const csrBody = JSON.parse(sent[1]!) as { csr: string };
    expect(Object.keys(csrBody)).toEqual(['csr']);
    expect(csrBody.csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
    for (const body of sent) {
      expect(body).not.toMatch(/PRIVATE KEY/);
      expect(body).not.toMatch(/"d"\s*:/); // no JWK private component
    }
    // After a reload, the keys are still there, usable, and cannot be exported.
    await page.reload();
    await page.waitForFunction(() => typeof window.inspectStoredKeys === 'function');
    expect(await page.evaluate(() => window.inspectStoredKeys())).toEqual({
      extractable: [false, false],
      signs: true,
      chainLength: 2,
    });
    await page.close();
  });
});
