/**
 * The central authority (CA) service: publishes the root certificate, its CRL and the signed trust
 * group; for authenticated administrators, issues organisation certificates from CSRs (admitting the
 * organisation to the trust group), revokes certificates (new CRL, new trust group without the
 * member) and removes members. Everything it does is appended to its audit chain.
 *
 * The app is its concerns as Fastify plugins: publication (`publication.ts`) and administration
 * (`admin.ts`) over the authority's state (`authority.ts`); its tables and migrations are in
 * `schema.ts`. It listens on mutual TLS only, for the federation's services and administrators.
 */
import type { ServerOptions as HttpsOptions } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Issuer } from '../../core/pki/issue.ts';
import { createApp } from '../common/http.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import { adminPlugin } from './admin.ts';
import { Authority } from './authority.ts';
import { publicationPlugin } from './publication.ts';
import { witnessPlugin } from './witness.ts';
import type { AuthorityTables } from './schema.ts';

export { Authority } from './authority.ts';
export { authorityMigrations, type AuthorityTables } from './schema.ts';

export interface AuthorityDeps {
  readonly database: Database<AuthorityTables>;
  readonly root: Issuer;
  readonly audit: AuditStore;
  /** scrypt hash of the administrators' bearer token. */
  readonly adminTokenHash: string;
  readonly logLevel?: string;
  readonly now?: () => Date;
  /** Mutual TLS server options (the federation's services fetch the trust group and CRL here). */
  readonly https?: HttpsOptions;
}

export async function buildAuthority(
  deps: AuthorityDeps,
): Promise<{ app: FastifyInstance; authority: Authority }> {
  const state = {
    database: deps.database,
    root: deps.root,
    ...(deps.now ? { now: deps.now } : {}),
  };
  const authority = new Authority(state);
  const app = createApp({
    name: 'authority',
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
    ...(deps.https ? { https: deps.https } : {}),
  });
  await app.register(publicationPlugin, { authority, root: deps.root });
  await app.register(witnessPlugin, { database: deps.database, audit: deps.audit });
  await app.register(adminPlugin, {
    ...state,
    authority,
    audit: deps.audit,
    adminTokenHash: deps.adminTokenHash,
  });
  return { app, authority };
}
