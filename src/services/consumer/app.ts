/**
 * The consumer hospital service: its clinicians sign in (scrypt password hashes), enrol their browsers'
 * devices (a CSR from a non-extractable key; the hospital's device CA certifies it with the clinician's
 * identity and structural role), revoke devices, and find the trust material the viewer pins. It never
 * sees an image key or an image.
 *
 * The app is its concerns as Fastify plugins: browser access (CORS and security headers), sign-in
 * (`sign-in.ts`), devices and their CRL (`devices.ts`), role assignments (`roles.ts`), trust material
 * (`trust.ts`), the directory of who holds which roles (`directory.ts`), the auditors' trail through
 * sessions (`audit.ts`) and the viewer (`viewer.ts`). Its tables, migrations and seeding helpers
 * are in `schema.ts`.
 */
import type { FastifyInstance } from 'fastify';
import type { SigningKey } from '../../core/crypto/keys.ts';
import type { Issuer } from '../../core/pki/issue.ts';
import { browserAccessPlugin } from '../common/browser.ts';
import { createApp } from '../common/http.ts';
import type { LoadedPki } from '../common/pki-dir.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import { consumerAuditPlugin, type ConsumerAuditOptions } from './audit.ts';
import { devicesPlugin } from './devices.ts';
import { directoryPlugin } from './directory.ts';
import { rolesPlugin } from './roles.ts';
import type { ConsumerTables } from './schema.ts';
import { signedIn, signInPlugin } from './sign-in.ts';
import { trustPlugin } from './trust.ts';
import { viewerPlugin, type ViewerOptions } from './viewer.ts';

export {
  addCare,
  addClinician,
  consumerMigrations,
  type Clinician,
  type ConsumerTables,
} from './schema.ts';

export interface ConsumerDeps {
  readonly database: Database<ConsumerTables>;
  readonly hospitalName: string;
  readonly deviceCa: Issuer;
  readonly pki: () => LoadedPki;
  readonly audit: AuditStore;
  /** The hospital's member id in the trust group, and its key: it signs role assignments. */
  readonly memberId: string;
  readonly signer: SigningKey;
  /** Auditors' access through sessions (the process has it; tests of sign-in need not). */
  readonly auditors?: Pick<ConsumerAuditOptions, 'sessions' | 'policy'>;
  /** The viewer's build and the URLs it is configured with. */
  readonly viewer?: ViewerOptions;
  /** Origins allowed to call from a browser (the viewer). */
  readonly corsOrigins?: readonly string[];
  readonly loginTtlMs?: number;
  readonly logLevel?: string;
  readonly now?: () => number;
}

export async function buildConsumer(deps: ConsumerDeps): Promise<FastifyInstance> {
  const app = createApp({
    name: 'consumer',
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
  });
  const now = deps.now ?? Date.now;
  const { database, audit } = deps;
  const clinicianOf = signedIn(database.db, now);

  await app.register(browserAccessPlugin, {
    ...(deps.corsOrigins ? { origins: deps.corsOrigins } : {}),
    methods: ['GET', 'POST'],
    headers: ['authorization', 'content-type'],
  });
  await app.register(signInPlugin, {
    database,
    audit,
    clinicianOf,
    hospitalName: deps.hospitalName,
    now,
    ...(deps.loginTtlMs ? { loginTtlMs: deps.loginTtlMs } : {}),
  });
  await app.register(devicesPlugin, {
    database,
    audit,
    clinicianOf,
    hospitalName: deps.hospitalName,
    deviceCa: deps.deviceCa,
    now,
  });
  await app.register(rolesPlugin, {
    database,
    audit,
    clinicianOf,
    memberId: deps.memberId,
    signer: deps.signer,
    now,
  });
  // Every role a person holds, signed, for separation of duty per person.
  await app.register(directoryPlugin, {
    database,
    memberId: deps.memberId,
    signer: deps.signer,
    now,
  });
  await app.register(trustPlugin, { pki: deps.pki });
  if (deps.auditors) await app.register(consumerAuditPlugin, { ...deps.auditors, audit });
  if (deps.viewer) await app.register(viewerPlugin, deps.viewer);
  return app;
}
