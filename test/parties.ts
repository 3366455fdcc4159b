/**
 * The producer hospital and the cloud in this process, for `app.inject` tests: the demo PKI written
 * to a temporary PKI directory (the services read their keys as the processes do), each party on its
 * own database (SQLite or PostgreSQL), the real policies signed by the demo's security officers, and
 * the cloud's internal listener on a loopback port with mutual TLS, which the producer uploads to.
 * Clinicians' devices are issued by the consumer hospital's device CA and recorded in its directory
 * (the consumer app, which the policy engines consult for each person), and their
 * `FederationClient` reaches the apps through `inject`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { randomBytes, toBase64Url, toHex } from '../src/core/bytes.ts';
import { FederationClient, type DeviceKeys } from '../src/core/client/federation.ts';
import { importGcmKey } from '../src/core/crypto/aead.ts';
import { signingKeyFromCryptoKeys } from '../src/core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../src/core/pki/demo.ts';
import {
  createCsr,
  generateEncryptionKeys,
  generateSigningKeys,
  issueDeviceFromCsr,
} from '../src/core/pki/issue.ts';
import { OID, type StructuralRole } from '../src/core/pki/oids.ts';
import { issueRoleAssignment } from '../src/core/policy/statements.ts';
import { thumbprint } from '../src/core/pki/validate.ts';
import { buildCloud, cloudMigrations, type CloudTables } from '../src/services/cloud/app.ts';
import { loadPartyKeys, partySessions, type PartyKeys } from '../src/services/common/party.ts';
import { loadPkiDir, writePkiDir, type LoadedPki } from '../src/services/common/pki-dir.ts';
import { hashSecret } from '../src/services/common/secrets.ts';
import { mtlsServerOptions } from '../src/services/common/tls.ts';
import { LiveTrust } from '../src/services/common/trust.ts';
import {
  addClinician,
  buildConsumer,
  consumerMigrations,
  type ConsumerTables,
} from '../src/services/consumer/app.ts';
import { tokenHash } from '../src/services/consumer/sign-in.ts';
import { signDemoPolicies } from '../src/services/policy/files.ts';
import { loadPolicyEngine } from '../src/services/policy/load.ts';
import { revocationCheck } from '../src/services/producer/revocation.ts';
import {
  buildProducer,
  producerMigrations,
  type Producer,
  type ProducerTables,
} from '../src/services/producer/app.ts';
import { AuditStore, type AuditTables } from '../src/services/storage/audit-store.ts';
import { FileBlobStore } from '../src/services/storage/blobs.ts';
import type { Database, Dialect } from '../src/services/storage/db.ts';
import { openTestDatabase, type TestDatabase } from './databases.ts';
import { REPO_ROOT } from './samples.ts';

export const STOW_TOKEN = 'stow-token-for-tests-0123456789';
export const PRODUCER_URL = 'http://producer.test';
export const CLOUD_URL = 'http://cloud.test';
export const CONSUMER_URL = 'http://consumer.test';

/** A fetch that hands each request to the app of its origin, through `inject`. */
export function injectFetch(apps: Readonly<Record<string, FastifyInstance>>): typeof fetch {
  return async (input, init) => {
    const url = new URL(
      typeof input === 'string' ? input : input instanceof URL ? input : input.url,
    );
    const app = apps[url.origin];
    if (!app) throw new TypeError(`fetch failed: nothing at ${url.origin}`);
    const r = await app.inject({
      method: (init?.method ?? 'GET') as 'GET',
      url: `${url.pathname}${url.search}`,
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
      ...(init?.body !== undefined && init.body !== null
        ? { payload: init.body as string | Buffer }
        : {}),
    });
    return new Response(r.statusCode === 204 ? null : new Uint8Array(r.rawPayload), {
      status: r.statusCode,
      headers: r.headers as Record<string, string>,
    });
  };
}

export interface Clinician {
  readonly device: DeviceKeys;
  /** The clinician's live sign-in at the consumer hospital (its bearer token). */
  readonly token: string;
  /** Signs out at the consumer hospital (POST /logout). */
  signOut(): Promise<void>;
  readonly thumbprint: string;
  readonly client: FederationClient;
  /** Role assignments the consumer hospital would sign for this clinician. */
  assignment(role: string, patient: string): Promise<string>;
}

export interface Parties {
  readonly demo: DemoPki;
  readonly pki: LoadedPki;
  readonly trust: LiveTrust;
  readonly producer: { app: FastifyInstance; producer: Producer; audit: AuditStore };
  readonly producerDb: Database<ProducerTables>;
  readonly cloud: { internal: FastifyInstance; public: FastifyInstance; audit: AuditStore };
  readonly cloudDb: Database<CloudTables>;
  /** The consumer hospital: its directory confirms each clinician's roles to the policy engines. */
  readonly consumer: FastifyInstance;
  readonly consumerDb: Database<ConsumerTables>;
  readonly cloudInternalUrl: string;
  readonly keys: { producer: PartyKeys; cloud: PartyKeys };
  readonly blobs: FileBlobStore;
  readonly fetch: typeof fetch;
  /** The time the apps see (ms); tests move it forward. */
  clock: number;
  clinician(id: string, role: StructuralRole): Promise<Clinician>;
  close(): Promise<void>;
}

export async function startParties(dialect: Dialect): Promise<Parties> {
  const parties = { clock: Date.now() } as { clock: number };
  const now = () => parties.clock;
  const dir = mkdtempSync(join(tmpdir(), 'ztv-parties-'));
  const demo = await createDemoPki();
  const pseudonymKey = randomBytes(32);
  await writePkiDir(join(dir, 'pki'), demo, pseudonymKey);
  const pki = await loadPkiDir(join(dir, 'pki'));
  const trust = new LiveTrust(pki, undefined, {});
  const keys = {
    producer: await loadPartyKeys(join(dir, 'pki'), 'producer'),
    cloud: await loadPartyKeys(join(dir, 'pki'), 'cloud'),
  };
  const dbs: TestDatabase<unknown>[] = [];
  const open = async <DB extends AuditTables>(
    name: string,
    m: typeof producerMigrations | typeof consumerMigrations,
  ) => {
    const t = await openTestDatabase<DB>(dialect, `${name}_migrations`, m);
    dbs.push(t as TestDatabase<unknown>);
    return t.database;
  };
  const producerDb = await open<ProducerTables>('producer', producerMigrations);
  const cloudDb = await open<CloudTables>('cloud', cloudMigrations);
  const consumerDb = await open<ConsumerTables>('consumer', consumerMigrations);
  await signDemoPolicies(join(REPO_ROOT, 'policies'), join(dir, 'policies'), join(dir, 'pki'));
  // The fetch through `inject`, once the apps exist (the engine reads the consumer's directory).
  let f: typeof fetch = () => Promise.reject(new TypeError('fetch failed: the apps are not built'));
  const policy = await loadPolicyEngine(trust, {
    dir: join(dir, 'policies'),
    directories: { consumer: CONSUMER_URL },
    fetch: (input, init) => f(input, init),
    isRevoked: revocationCheck(producerDb.db),
    now: () => parties.clock,
  });
  const sessions = (keys: PartyKeys, audit: AuditStore) => partySessions({ keys, audit }, trust);

  const cloudAudit = new AuditStore(
    cloudDb as unknown as Database<AuditTables>,
    'cloud',
    keys.cloud.signer,
  );
  const blobs = new FileBlobStore(join(dir, 'blobs'));
  const cloud = await buildCloud({
    id: 'cloud',
    database: cloudDb,
    blobs,
    signer: keys.cloud.signer,
    decryptionKey: keys.cloud.decryptionKey,
    trust,
    policy,
    audit: cloudAudit,
    sessions: sessions(keys.cloud, cloudAudit),
    corsOrigins: [CONSUMER_URL],
    logLevel: 'silent',
    now,
    https: mtlsServerOptions({ cert: keys.cloud.certPem, key: keys.cloud.keyPem, pki }),
  });
  await cloud.internal.listen({ host: '127.0.0.1', port: 0 });
  const cloudInternalUrl = `https://127.0.0.1:${(cloud.internal.server.address() as AddressInfo).port}`;

  const producerAudit = new AuditStore(
    producerDb as unknown as Database<AuditTables>,
    'producer',
    keys.producer.signer,
  );
  const producer = await buildProducer({
    id: 'producer',
    database: producerDb,
    outbox: new FileBlobStore(join(dir, 'outbox')),
    signer: keys.producer.signer,
    pseudonymKey,
    kek: await importGcmKey(randomBytes(32)),
    trust,
    policy,
    domain: OID.domainProducer,
    audit: producerAudit,
    sessions: sessions(keys.producer, producerAudit),
    cloud: {
      id: 'cloud',
      url: cloudInternalUrl,
      tls: { cert: keys.producer.certPem, key: keys.producer.keyPem },
    },
    stowTokenHash: await hashSecret(STOW_TOKEN),
    corsOrigins: [CONSUMER_URL],
    logLevel: 'silent',
    now,
  });

  const consumerOrg = demo.organisations.consumer;
  const consumerSigner = await signingKeyFromCryptoKeys(
    'ECDSA-P256',
    consumerOrg.keys.privateKey,
    consumerOrg.keys.publicKey,
  );
  const ca = demo.hospitalCas['consumer-ca'];
  const consumer = await buildConsumer({
    database: consumerDb,
    hospitalName: 'Riverside Consumer Hospital',
    deviceCa: { cert: ca.cert, privateKey: ca.keys.privateKey },
    pki: () => pki,
    audit: new AuditStore(
      consumerDb as unknown as Database<AuditTables>,
      'consumer',
      consumerSigner,
    ),
    memberId: 'consumer',
    signer: consumerSigner,
    logLevel: 'silent',
    now,
  });
  f = injectFetch({
    [PRODUCER_URL]: producer.app,
    [CLOUD_URL]: cloud.public,
    [CONSUMER_URL]: consumer,
  });
  const passwordHash = await hashSecret(toHex(randomBytes(16)));

  return Object.assign(parties, {
    demo,
    pki,
    trust,
    producer: { ...producer, audit: producerAudit },
    producerDb,
    cloud: { ...cloud, audit: cloudAudit },
    cloudDb,
    consumer,
    consumerDb,
    cloudInternalUrl,
    keys,
    blobs,
    fetch: f,
    async clinician(id: string, role: StructuralRole): Promise<Clinician> {
      const signing = await generateSigningKeys(false);
      const encryption = await generateEncryptionKeys(false);
      const cert = await issueDeviceFromCsr(
        { cert: ca.cert, privateKey: ca.keys.privateKey },
        await createCsr(signing, encryption.publicKey, `${id} device`),
        { id, role, domain: OID.domainConsumer },
        'Riverside Consumer Hospital',
      );
      // The hospital's directory knows the clinician and this device, as enrolment records them.
      await addClinician(consumerDb.db, {
        id,
        name: id,
        role,
        domain: OID.domainConsumer,
        passwordHash,
      });
      await consumerDb.db
        .insertInto('devices')
        .values({
          serial: cert.serialNumber,
          clinician_id: id,
          thumbprint: await thumbprint(cert),
          pem: cert.toString('pem'),
          issued_at: cert.notBefore.toISOString(),
          revoked_at: null,
        })
        .execute();
      // … and a live sign-in, as the clinician signed in to enrol (a consultation needs one).
      const token = toBase64Url(randomBytes(32));
      await consumerDb.db
        .insertInto('login_tokens')
        .values({
          token_hash: tokenHash(token),
          clinician_id: id,
          expires_at: parties.clock + 8 * 3600_000,
          revoked: 0,
        })
        .execute();
      const device = {
        signing,
        encryption,
        chain: [cert.toString('pem'), ca.cert.toString('pem')],
      };
      const client = new FederationClient(
        { consumer: CONSUMER_URL, producer: PRODUCER_URL, cloud: CLOUD_URL },
        device,
        () => trust.view(),
        f,
      );
      return {
        device,
        token,
        async signOut() {
          const r = await consumer.inject({
            method: 'POST',
            url: '/logout',
            headers: { authorization: `Bearer ${token}` },
          });
          if (r.statusCode !== 200) throw new Error(`sign-out answered ${r.statusCode}`);
        },
        thumbprint: await client.deviceId(),
        client,
        assignment: (r, patient) =>
          issueRoleAssignment(
            { key: consumerSigner, kid: consumerSigner.publicKey.keyIdHex },
            {
              iss: 'consumer',
              sub: id,
              role: r,
              patient,
              nbf: parties.clock - 60_000,
              exp: parties.clock + 3600_000,
            },
          ),
      };
    },
    async close() {
      await producer.app.close();
      await cloud.public.close();
      await cloud.internal.close();
      await consumer.close();
      for (const t of dbs) await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}
