/**
 * The cloud process: an internal listener (mutual TLS, producers upload) and a public one (clinicians'
 * sessions). Several replicas may run against one PostgreSQL database and one blob directory
 * (ZTV_CLOUD_BLOBS); ZTV_PORT_CLOUD and ZTV_PORT_CLOUD_INTERNAL give each its ports.
 * ZTV_CLOUD_WORKERS runs it as several processes behind one port (`cluster.ts`).
 */
import cluster from 'node:cluster';
import { join } from 'node:path';
import { federationConfig, urls } from '../common/config.ts';
import { captureTo } from '../common/capture.ts';
import { faultHook } from '../common/faults.ts';
import {
  announce,
  onShutdown,
  partyPolicy,
  partySessions,
  partyTrust,
  startParty,
} from '../common/party.ts';
import { mtlsServerOptions } from '../common/tls.ts';
import { auditHealth } from '../storage/audit-witness.ts';
import { FileBlobStore } from '../storage/blobs.ts';
import { buildCloud, cloudMigrations, type CloudTables } from './app.ts';
import {
  cloudWorkerCount,
  cloudWorkerIndex,
  cloudWorkerReady,
  runCloudPrimary,
} from './cluster.ts';

const c = federationConfig();
const u = urls(c);
const workers = cloudWorkerCount(process.env, c.databaseUrl);
if (workers > 1 && cluster.isPrimary) {
  const primary = await runCloudPrimary({
    workers,
    host: c.host,
    port: c.ports.cloud,
    corsOrigins: [u.consumer],
    ...limit('ZTV_CLOUD_MAX_INFLIGHT', 'maxInflight', 1),
    ...limit('ZTV_CLOUD_MAX_QUEUE', 'maxQueue', 0),
    ...limit('ZTV_CLOUD_QUEUE_WAIT_MS', 'queueWaitMs', 0),
  });
  announce('cloud', { cloud: c.ports.cloud, cloudInternal: c.ports.cloudInternal, workers });
  onShutdown(() => primary.close());
} else await serve();

/** A load-shedding limit from the environment (unset: the default), refused unless a whole number. */
function limit<K extends string>(name: string, key: K, min: number): Partial<Record<K, number>> {
  const v = process.env[name];
  if (v === undefined) return {};
  if (!/^\d+$/.test(v) || Number(v) < min)
    throw new Error(`${name} must be a whole number, at least ${min}`);
  return { [key]: Number(v) } as Partial<Record<K, number>>;
}

/** One cloud: alone, or one worker of several (then its public port is its own, on loopback). */
async function serve(): Promise<void> {
  const index = cloudWorkerIndex();
  const rt = await startParty<CloudTables>(c, 'cloud', cloudMigrations);
  const trust = await partyTrust(c, rt);
  const sessions = partySessions(rt, trust, index);
  const blobs = new FileBlobStore(process.env.ZTV_CLOUD_BLOBS ?? join(rt.dir, 'blobs'));
  // Blobs left by a crash between the blob write and the row commit; young ones may be another
  // replica's upload in flight, so only those older than ZTV_ORPHAN_MIN_AGE_MS (5 minutes) go.
  const orphanAge = Number(process.env.ZTV_ORPHAN_MIN_AGE_MS ?? 5 * 60_000);
  if (!Number.isInteger(orphanAge) || orphanAge < 0)
    throw new Error('ZTV_ORPHAN_MIN_AGE_MS must be a number of milliseconds');
  const swept = await blobs.sweep(
    async (id) =>
      !!(await rt.database.db
        .selectFrom('instances')
        .select('id')
        .where('id', '=', id)
        .executeTakeFirst()),
    orphanAge,
  );
  if (swept.length) process.stderr.write(`cloud: removed ${swept.length} orphan blob(s)\n`);
  const capture = captureTo(process.env.ZTV_CAPTURE_DIR);
  const afterBlobWrite = faultHook('cloud:after-blob-write');
  const beforeRedemptionCommit = faultHook('cloud:before-redemption-commit');
  const midRetrieval = faultHook('cloud:mid-retrieval');
  const { internal, public: pub } = await buildCloud({
    id: 'cloud',
    database: rt.database,
    blobs,
    ...(capture ? { capture } : {}),
    ...(afterBlobWrite ? { afterBlobWrite } : {}),
    ...(beforeRedemptionCommit ? { beforeRedemptionCommit } : {}),
    ...(midRetrieval ? { midRetrieval } : {}),
    signer: rt.keys.signer,
    decryptionKey: rt.keys.decryptionKey,
    trust,
    policy: await partyPolicy(c, trust),
    audit: rt.audit,
    sessions,
    corsOrigins: [u.consumer],
    logLevel: c.logLevel,
    https: mtlsServerOptions({ cert: rt.keys.certPem, key: rt.keys.keyPem, pki: rt.pki }),
  });
  await pub.register(auditHealth, { audit: rt.audit });
  await internal.listen({ host: c.host, port: c.ports.cloudInternal });
  if (index === undefined) {
    await pub.listen({ host: c.host, port: c.ports.cloud });
    announce('cloud', { cloud: c.ports.cloud, cloudInternal: c.ports.cloudInternal });
  } else {
    // Its own port (not the cluster's shared one), reached only by the primary over loopback.
    await pub.listen({ host: '127.0.0.1', port: 0, exclusive: true });
    cloudWorkerReady((pub.server.address() as { port: number }).port);
  }
  onShutdown(async () => {
    await pub.close();
    await internal.close();
    await rt.database.close();
  });
}
