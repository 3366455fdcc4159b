/**
 * A real federation for integration tests: the four services as their own processes (the code
 * `npm start` runs) on free loopback ports, in a temporary data directory, on SQLite or on a fresh
 * set of PostgreSQL schemas; a few real CT slices outsourced through the producer; clinicians who
 * sign in and enroll a device with keys made here, exactly as the browser does.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Migration } from 'kysely';
import { randomBytes, toHex } from '../src/core/bytes.ts';
import { FederationClient, fetchTrust, type DeviceKeys } from '../src/core/client/federation.ts';
import { keyIdOf, verifyKeyFromSpki } from '../src/core/crypto/keys.ts';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import type { AuditRecord } from '../src/core/audit/record.ts';
import { createCsr, generateEncryptionKeys, generateSigningKeys } from '../src/core/pki/issue.ts';
import type { PkiView } from '../src/core/pki/resolver.ts';
import { authorityMigrations } from '../src/services/authority/app.ts';
import { cloudMigrations } from '../src/services/cloud/app.ts';
import { federationConfig, type PartyName } from '../src/services/common/config.ts';
import { consumerMigrations } from '../src/services/consumer/app.ts';
import { outsource } from '../src/cli/commands/outsource.ts';
import {
  startFederation,
  type Federation,
  type FederationOptions,
} from '../src/services/launcher.ts';
import { producerMigrations } from '../src/services/producer/app.ts';
import type { AuditTables } from '../src/services/storage/audit-store.ts';
import { dropSchema, openDatabase, type Database } from '../src/services/storage/db.ts';
import { PG_URL } from './databases.ts';
import { sampleFiles, samplePath } from './samples.ts';

const MIGRATIONS: Record<PartyName, Record<string, Migration>> = {
  authority: authorityMigrations,
  producer: producerMigrations,
  cloud: cloudMigrations,
  consumer: consumerMigrations,
};

export interface TestClinician {
  readonly user: string;
  readonly token: string;
  readonly device: DeviceKeys;
  readonly client: FederationClient;
  readonly roleAssignments: string[];
}

export interface TestFederation {
  readonly fed: Federation;
  readonly dir: string;
  readonly dialect: 'sqlite' | 'postgres';
  /** On PostgreSQL, the prefix of the parties' schemas (`<prefix>_<party>`). */
  readonly schemaPrefix?: string;
  /** The outsourced source files: CT slices of one patient, and one image of another. */
  readonly ct: readonly string[];
  readonly other: readonly string[];
  readonly ctPatient: string;
  readonly otherPatient: string;
  /** Every line the services printed so far, by process. */
  readonly output: Map<string, string[]>;
  /** Resolves when a process prints a line matching `pattern`. */
  waitFor(instance: string, pattern: RegExp, timeoutMs?: number): Promise<string>;
  trust(): Promise<PkiView>;
  /** Signs in and enrolls a fresh device (extractable keys, so tests can look for them). */
  clinician(user: string): Promise<TestClinician>;
  /** A connection to one party's database (close it after use). */
  database<DB>(party: PartyName): Promise<Database<DB>>;
  /** A party's audit records, oldest first. */
  audit(party: PartyName): Promise<AuditRecord[]>;
  /** Resolves a ticket's producer signing key for `openKeys`. */
  resolveProducer: Parameters<FederationClient['openKeys']>[1];
  close(): Promise<void>;
}

export interface TestFederationOptions {
  readonly postgres?: boolean;
  /** CT slices of series/ct_chest_LIDC-IDRI-0314 to outsource (default 3). */
  readonly slices?: number;
  readonly env?: Record<string, string>;
  /** Capture what the cloud receives (ZTV_CAPTURE_DIR) into `<dir>/cloud-capture`. */
  readonly capture?: boolean;
  /** Supervise the services as `npm start` does (restart the dead, give up on the dying). */
  readonly supervise?: FederationOptions['supervise'];
}

/** One process of a running federation, as Linux's /proc shows it. */
export interface ServiceProcess {
  readonly pid: number;
  /** `cloud`, `producer`…; a cloud worker is `cloud#<index>`. */
  readonly name: string;
  readonly rssMiB: number;
  readonly fds: number;
}

/**
 * The processes of the federation whose data directory is `dataDir` (found by the `ZTV_DATA` of
 * their environment), with their resident memory and open file descriptors.
 */
export function federationProcesses(dataDir: string): ServiceProcess[] {
  const found: ServiceProcess[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'latin1');
      const party = /src\/services\/(\w+)\/main\.ts/.exec(cmd)?.[1];
      if (!party) continue;
      const env = readFileSync(`/proc/${d}/environ`, 'latin1').split('\0');
      if (!env.includes(`ZTV_DATA=${dataDir}`)) continue;
      const worker = env.find((e) => e.startsWith('ZTV_CLOUD_WORKER_INDEX='))?.split('=')[1];
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d}/status`, 'latin1'))?.[1];
      found.push({
        pid: Number(d),
        name: worker === undefined ? party : `${party}#${worker}`,
        rssMiB: Number(rss ?? 0) / 1024,
        fds: readdirSync(`/proc/${d}/fd`).length,
      });
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name) || a.pid - b.pid);
}

const patientOf = (f: string): string =>
  parseDicom(new Uint8Array(readFileSync(f))).dataset.text(T.PatientID) ?? '';

export async function startTestFederation(
  opts: TestFederationOptions = {},
): Promise<TestFederation> {
  const { freePorts } = await import('../src/services/launcher.ts');
  const dir = mkdtempSync(join(tmpdir(), 'ztv-fed-'));
  const [authority, producer, cloud, cloudInternal, consumer, dimse] = await freePorts(6);
  const prefix = `t${toHex(randomBytes(5))}`;
  const config = federationConfig({
    ZTV_DATA: dir,
    ZTV_PORT_AUTHORITY: String(authority),
    ZTV_PORT_PRODUCER: String(producer),
    ZTV_PORT_CLOUD: String(cloud),
    ZTV_PORT_CLOUD_INTERNAL: String(cloudInternal),
    ZTV_PORT_CONSUMER: String(consumer),
    ZTV_PORT_DIMSE: String(dimse),
    ZTV_VIEWER_DIR: join(dir, 'no-viewer'),
    ZTV_LOG_LEVEL: 'warn',
    ...(opts.postgres ? { DATABASE_URL: PG_URL, ZTV_DB_SCHEMA_PREFIX: prefix } : {}),
  });
  const ct = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(0, opts.slices ?? 3);
  const other = [samplePath('small/CT_small.dcm')];
  const ctPatient = patientOf(ct[0]!);
  const otherPatient = patientOf(other[0]!);
  const demoCare = [
    `dr.bob|attending|${ctPatient}`,
    `dr.bob|attending|${otherPatient}`,
    `nurse.carol|care-team|${ctPatient}`,
  ].join(';');
  const output = new Map<string, string[]>();
  const waiters: { instance: string; pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onOutput = (instance: string, line: string) => {
    const list = output.get(instance) ?? [];
    list.push(line);
    output.set(instance, list);
    for (const w of [...waiters])
      if (w.instance === instance && w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
  };
  /** The schemas and files of this federation: dropped when it closes, or when it fails to start. */
  const removeData = async () => {
    if (opts.postgres)
      for (const p of ['authority', 'producer', 'cloud', 'consumer'])
        await dropSchema(PG_URL, `${prefix}_${p}`);
    rmSync(dir, { recursive: true, force: true });
  };
  let fed: Federation;
  try {
    fed = await startFederation({
      config,
      demoCare,
      verbose: !!process.env.ZTV_VERBOSE,
      onOutput,
      ...(opts.supervise ? { supervise: opts.supervise } : {}),
      env: {
        ...(opts.capture ? { ZTV_CAPTURE_DIR: join(dir, 'cloud-capture') } : {}),
        ...opts.env,
      },
    });
  } catch (e) {
    // A service that did not start leaves the others' schemas behind otherwise, for every later run.
    await removeData();
    throw e;
  }
  try {
    const up = await outsource(fed.urls.producer, fed.secrets.stowToken, [...ct, ...other]);
    if (up.failed.length || up.stored !== ct.length + other.length)
      throw new Error(`outsourcing failed: ${up.failed.join('; ')}`);
  } catch (e) {
    await fed.stop();
    await removeData();
    throw e;
  }

  let trustView: PkiView | undefined;
  const trust = async () => (trustView ??= await fetchTrust(fed.urls.consumer));

  const database = async <DB>(party: PartyName): Promise<Database<DB>> =>
    openDatabase<DB>({
      ...(opts.postgres
        ? { url: PG_URL, schema: `${prefix}_${party}` }
        : { file: join(dir, party, `${party}.sqlite`) }),
      migrationTable: `${party}_migrations`,
      migrations: MIGRATIONS[party],
    });

  const clients: FederationClient[] = [];
  return {
    fed,
    dir,
    dialect: opts.postgres ? 'postgres' : 'sqlite',
    ...(opts.postgres ? { schemaPrefix: prefix } : {}),
    ct,
    other,
    ctPatient,
    otherPatient,
    output,
    waitFor(instance, pattern, timeoutMs = 60_000) {
      const seen = (output.get(instance) ?? []).find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`${instance} printed nothing like ${pattern} in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          instance,
          pattern,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
      });
    },
    trust,
    async clinician(user) {
      const { token } = await FederationClient.login(fed.urls.consumer, user, 'ztv-demo');
      const signing = await generateSigningKeys(true);
      const encryption = await generateEncryptionKeys(true);
      const csr = await createCsr(signing, encryption.publicKey, `${user} test device`);
      const r = await fetch(`${fed.urls.consumer}/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ csr }),
      });
      if (!r.ok) throw new Error(`enrollment of ${user} failed: ${r.status} ${await r.text()}`);
      const { chain } = (await r.json()) as { chain: string[] };
      const device = { signing, encryption, chain };
      const view = await trust();
      const client = new FederationClient(
        { consumer: fed.urls.consumer, producer: fed.urls.producer, cloud: fed.urls.cloud },
        device,
        () => view,
      );
      clients.push(client);
      return { user, token, device, client, roleAssignments: await client.roleAssignments(token) };
    },
    database,
    async audit(party) {
      const d = await database<AuditTables>(party);
      try {
        const rows = await d.db.selectFrom('audit_records').selectAll().orderBy('seq').execute();
        return rows.map(
          (r) =>
            ({
              ...r,
              actor: JSON.parse(r.actor),
              objects: JSON.parse(r.objects),
              details: JSON.parse(r.details),
            }) as AuditRecord,
        );
      } finally {
        await d.close();
      }
    },
    async resolveProducer(kid) {
      const view = await trust();
      for (const cert of view.organisations) {
        const spki = new Uint8Array(cert.publicKey.rawData);
        if (toHex(keyIdOf(spki)) === kid)
          return { producerId: 'producer', key: await verifyKeyFromSpki(spki) };
      }
      throw new Error(`no organisation of the federation has key ${kid}`);
    },
    async close() {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      await fed.stop();
      await removeData();
    },
  };
}
