/**
 * The cloud provider: stores protected instances uploaded by certified producers (mutual TLS) and
 * serves them to clinicians who redeem a blind ticket. It never holds a key or plaintext: it checks the
 * producer's signature on the ticket, decrypts its own part (image ids, traces, nonce), spends the
 * nonce once across replicas (database), decides with the policy, inserts each trace with its own
 * signature — the obligation before any release — logs, and streams the traced instances as
 * multipart/related through the clinician's session. Every refused ticket is a logged security alert.
 *
 * Two apps, each its concerns as Fastify plugins: the internal one (mutual TLS) takes uploads
 * (`upload.ts`); the public one has browser access (CORS and security headers), `GET /`, and the
 * session layer with redemption (`redemption.ts`), retrieval (`retrieval.ts`) and the auditors'
 * trail. Its tables and migrations are in `schema.ts`.
 */
import type { ServerOptions as HttpsOptions } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { SessionServer } from '../../core/session/protocol.ts';
import { aboutPlugin } from '../common/about.ts';
import { AUDIT_DOMAIN, auditTrailPlugin } from '../common/audit-access.ts';
import { browserAccessPlugin } from '../common/browser.ts';
import type { Capture } from '../common/capture.ts';
import { createApp } from '../common/http.ts';
import { sessionPlugin } from '../common/session.ts';
import { sql } from '../storage/db.ts';
import { alerts } from './alerts.ts';
import { redemptionPlugin, type RedemptionOptions } from './redemption.ts';
import { retrievalPlugin } from './retrieval.ts';
import { uploadPlugin } from './upload.ts';

export { cloudMigrations, type CloudTables } from './schema.ts';

export interface CloudDeps extends Omit<RedemptionOptions, 'alert' | 'now'> {
  readonly sessions: SessionServer;
  readonly corsOrigins?: readonly string[];
  readonly logLevel?: string;
  readonly now?: () => number;
  /** For the crash tests: called between storing the blob and committing the row. */
  readonly afterBlobWrite?: () => Promise<void>;
  /** For the crash tests: called in a retrieval from its start, once two instances were sent. */
  readonly midRetrieval?: () => Promise<void>;
  /** Sees every request body and opened operation (confidentiality audits; off by default). */
  readonly capture?: Capture;
  /** Mutual TLS server options of the internal (producer-facing) listener. */
  readonly https?: HttpsOptions;
}

export async function buildCloud(
  deps: CloudDeps,
): Promise<{ internal: FastifyInstance; public: FastifyInstance }> {
  const now = deps.now ?? Date.now;
  const alert = alerts(deps.audit);
  const health = {
    database: () => sql`select 1`.execute(deps.database.db),
    trust: () => deps.trust.fresh(),
  };

  // --- internal: producers upload over mutual TLS -----------------------------------------------
  const internal = createApp({
    name: 'cloud-internal',
    bodyLimit: 256 * 1024 * 1024,
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
    ...(deps.https ? { https: deps.https } : {}),
  });
  deps.capture?.attach(internal, 'internal');
  await internal.register(uploadPlugin, {
    database: deps.database,
    blobs: deps.blobs,
    trust: deps.trust,
    audit: deps.audit,
    alert,
    now,
    ...(deps.afterBlobWrite ? { afterBlobWrite: deps.afterBlobWrite } : {}),
  });

  // --- public: clinicians' devices, through sessions --------------------------------------------
  const pub = createApp({ name: 'cloud', ...(deps.logLevel ? { logLevel: deps.logLevel } : {}) });
  deps.capture?.attach(pub, 'public');
  await pub.register(browserAccessPlugin, {
    ...(deps.corsOrigins ? { origins: deps.corsOrigins } : {}),
    methods: ['POST'],
    headers: ['content-type'],
  });
  await pub.register(aboutPlugin, {
    service: 'cloud',
    description:
      'Cloud provider: stores protected instances (producers upload over mutual TLS on the internal port); redemption and retrieval through sessions at /session/*',
    checks: health,
  });
  await pub.register(sessionPlugin, {
    server: deps.sessions,
    ...(deps.capture ? { onOperation: deps.capture.operation } : {}),
  });
  await pub.register(redemptionPlugin, {
    id: deps.id,
    database: deps.database,
    blobs: deps.blobs,
    signer: deps.signer,
    decryptionKey: deps.decryptionKey,
    trust: deps.trust,
    policy: deps.policy,
    audit: deps.audit,
    alert,
    now,
    ...(deps.beforeRedemptionCommit ? { beforeRedemptionCommit: deps.beforeRedemptionCommit } : {}),
  });
  await pub.register(retrievalPlugin, {
    database: deps.database,
    blobs: deps.blobs,
    audit: deps.audit,
    now,
    ...(deps.midRetrieval ? { midRetrieval: deps.midRetrieval } : {}),
  });
  await pub.register(auditTrailPlugin, {
    audit: deps.audit,
    policy: deps.policy,
    domain: AUDIT_DOMAIN,
    now,
  });
  return { internal, public: pub };
}
