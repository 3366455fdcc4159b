/**
 * The consumer hospital process: clinicians' sign-in, device enrollment and role assignments, and the
 * viewer's static files (the viewer is the hospital's own application). On first start it seeds the
 * demo clinicians (password `ztv-demo`) and the care relationships given in ZTV_DEMO_CARE
 * (`clinician|role|patient;…`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pemDecode } from '../../core/crypto/keys.ts';
import { OID, type StructuralRole } from '../../core/pki/oids.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import { federationConfig, urls } from '../common/config.ts';
import {
  announce,
  onShutdown,
  partyPolicy,
  partySessions,
  partyTrust,
  startParty,
} from '../common/party.ts';
import { hashSecret } from '../common/secrets.ts';
import { auditHealth, witnessRelay } from '../storage/audit-witness.ts';
import {
  addCare,
  addClinician,
  buildConsumer,
  consumerMigrations,
  type ConsumerTables,
} from './app.ts';

export const DEMO_PASSWORD = 'ztv-demo';
export const DEMO_CLINICIANS: { id: string; name: string; role: StructuralRole }[] = [
  { id: 'dr.bob', name: 'Bob Durand, MD', role: 'physician' },
  { id: 'dr.alice', name: 'Alice Martin, MD', role: 'radiologist' },
  { id: 'nurse.carol', name: 'Carol Petit, RN', role: 'nurse' },
  { id: 'admin.erin', name: 'Erin Leroy', role: 'administrative' },
  { id: 'auditor.dave', name: 'Dave Moreau', role: 'auditor' },
];

const c = federationConfig();
const rt = await startParty<ConsumerTables>(c, 'consumer', consumerMigrations);
const db = rt.database.db;
if (!(await db.selectFrom('clinicians').select('id').executeTakeFirst())) {
  const hash = await hashSecret(DEMO_PASSWORD);
  for (const d of DEMO_CLINICIANS)
    await addClinician(db, { ...d, domain: OID.domainConsumer, passwordHash: hash });
  for (const entry of (process.env.ZTV_DEMO_CARE ?? '').split(';').filter(Boolean)) {
    const [clinician, role, patient] = entry.split('|');
    if (clinician && role && patient)
      await addCare(db, { clinician, role, patient, until: Date.now() + 365 * 86400_000 });
  }
}
const caKey = await crypto.subtle.importKey(
  'pkcs8',
  pemDecode(
    readFileSync(join(c.pkiDir, 'consumer-ca.key.pem'), 'utf8'),
    'PRIVATE KEY',
  ) as Uint8Array<ArrayBuffer>,
  { name: 'ECDSA', namedCurve: 'P-256' },
  false,
  ['sign'],
);
const u = urls(c);
// The viewer checks signers against what /trust serves: the authority's current trust group and
// CRLs (refreshed every few seconds), not the copy made when the PKI directory was written.
const trust = await partyTrust(c, rt);
const app = await buildConsumer({
  database: rt.database,
  hospitalName: 'Riverside Consumer Hospital',
  deviceCa: {
    cert: new X509Certificate(readFileSync(join(c.pkiDir, 'consumer-ca.pem'), 'utf8')),
    privateKey: caKey,
  },
  pki: () => trust.view(),
  audit: rt.audit,
  memberId: 'consumer',
  signer: rt.keys.signer,
  auditors: { sessions: partySessions(rt, trust), policy: await partyPolicy(c, trust) },
  viewer: { dir: c.viewerDir, urls: u },
  corsOrigins: [u.consumer],
  logLevel: c.logLevel,
});
// Auditors fetch the witness's statements here (signed by the authority over their nonce).
await app.register(witnessRelay, {
  authority: u.authority,
  identity: () => ({ cert: rt.keys.certPem, key: rt.keys.keyPem, pki: trust.view() }),
});
await app.register(auditHealth, { audit: rt.audit });
await app.listen({ host: c.host, port: c.ports.consumer });
announce('consumer', { consumer: c.ports.consumer });
onShutdown(async () => {
  await app.close();
  await rt.database.close();
});
