/**
 * The producer hospital process: sessions and STOW-RS on its port; uploads to the cloud over mutual
 * TLS. Its key-encryption key lives in its own data directory (created on first start, mode 0600),
 * never in its database.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, randomBytes, toHex } from '../../core/bytes.ts';
import { importGcmKey } from '../../core/crypto/aead.ts';
import { OID } from '../../core/pki/oids.ts';
import { federationConfig, loadSecrets, urls } from '../common/config.ts';
import { faultHook } from '../common/faults.ts';
import { writeOutput } from '../common/files.ts';
import {
  announce,
  onShutdown,
  partyPolicy,
  partySessions,
  partyTrust,
  startParty,
} from '../common/party.ts';
import { hashSecret } from '../common/secrets.ts';
import { auditHealth } from '../storage/audit-witness.ts';
import { FileBlobStore } from '../storage/blobs.ts';
import { buildProducer, producerMigrations, type ProducerTables } from './app.ts';
import { startDimse, type DimseListener } from './dimse.ts';
import { protectThreads } from './protect-pool.ts';
import { revocationCheck } from './revocation.ts';

const c = federationConfig();
const rt = await startParty<ProducerTables>(c, 'producer', producerMigrations);
const u = urls(c);
const kekPath = join(rt.dir, 'kek.hex');
if (!existsSync(kekPath)) writeOutput(kekPath, `${toHex(randomBytes(32))}\n`, 0o600);
const kek = await importGcmKey(fromHex(readFileSync(kekPath, 'utf8').trim()));
const trust = await partyTrust(c, rt);
const sessions = partySessions(rt, trust);
const beforeCloudUpload = faultHook('producer:before-cloud-upload');
const { app, producer } = await buildProducer({
  id: 'producer',
  database: rt.database,
  outbox: new FileBlobStore(join(rt.dir, 'outbox')),
  signer: rt.keys.signer,
  pseudonymKey: fromHex(readFileSync(join(c.pkiDir, 'producer.pseudonym.key'), 'utf8').trim()),
  kek,
  trust,
  policy: await partyPolicy(c, trust, { isRevoked: revocationCheck(rt.database.db) }),
  domain: OID.domainProducer,
  audit: rt.audit,
  sessions,
  cloud: { id: 'cloud', url: u.cloudInternal, tls: { cert: rt.keys.certPem, key: rt.keys.keyPem } },
  stowTokenHash: await hashSecret(loadSecrets(c).stowToken),
  ticketTtlMs: c.ticketTtlMs,
  ...(beforeCloudUpload ? { beforeCloudUpload } : {}),
  protectThreads: protectThreads(process.env.ZTV_PROTECT_THREADS),
  corsOrigins: [u.consumer],
  logLevel: c.logLevel,
});
await app.register(auditHealth, { audit: rt.audit });
await app.listen({ host: c.host, port: c.ports.producer });
// The DICOM node: C-ECHO and C-STORE from the configured modalities and PACS (docs/services.md).
let dicom: DimseListener | undefined;
if (c.dimse.port !== null)
  dicom = await startDimse({
    producer,
    audit: rt.audit,
    aeTitle: c.dimse.aeTitle,
    callingAeTitles: c.dimse.callingAeTitles,
    host: c.host,
    port: c.dimse.port,
    ...(c.dimse.tls
      ? {
          tls: {
            cert: readFileSync(c.dimse.tls.certFile, 'utf8'),
            key: readFileSync(c.dimse.tls.keyFile, 'utf8'),
            ...(c.dimse.tls.caFile ? { ca: readFileSync(c.dimse.tls.caFile, 'utf8') } : {}),
          },
        }
      : {}),
    log: app.log,
  });
announce('producer', {
  producer: c.ports.producer,
  ...(dicom ? { dimse: dicom.port } : {}),
});
onShutdown(async () => {
  await dicom?.close();
  await app.close();
  await producer.close();
  await rt.database.close();
});
