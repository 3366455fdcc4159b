/**
 * What every service process does at start: load its own keys and certificate from the PKI directory,
 * open its database (its own SQLite file, or its own PostgreSQL schema), its audit chain, and announce
 * itself on stdout when listening, so that the launcher knows it is up.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Migration } from 'kysely';
import { importEcdhPrivateKey } from '../../core/crypto/ecdh.ts';
import { pemDecode, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import { ZtvError } from '../../core/errors.ts';
import { AuditStore, type AuditTables } from '../storage/audit-store.ts';
import { AuditSyslog, syslogTls } from '../storage/audit-syslog.ts';
import { mtlsWitness } from '../storage/audit-witness.ts';
import { openDatabase, type Database } from '../storage/db.ts';
import { SessionServer, STALE_SESSION_REFUSALS } from '../../core/session/protocol.ts';
import { deviceValidator } from '../../core/session/peers.ts';
import { partyDir, urls, type FederationConfig, type PartyName } from './config.ts';
import { loadPkiDir, type LoadedPki } from './pki-dir.ts';
import { LiveTrust } from './trust.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import { loadPolicyEngine, policyDir, type PolicyEngineSetup } from '../policy/load.ts';

export interface PartyKeys {
  readonly signer: SigningKey;
  /** ECDH private key (what tickets for this party are encrypted to). */
  readonly decryptionKey: CryptoKey;
  readonly certPem: string;
  readonly keyPem: string;
}

const read = (dir: string, name: string): string => {
  try {
    return readFileSync(join(dir, name), 'utf8');
  } catch {
    throw new ZtvError(
      'bad-key',
      `the PKI directory ${dir} has no ${name}: run npm start (or ztv pki init) first`,
    );
  }
};

export async function loadPartyKeys(pkiDir: string, name: string): Promise<PartyKeys> {
  const keyPem = read(pkiDir, `${name}.key.pem`);
  const decryptionKey = await importEcdhPrivateKey(
    pemDecode(read(pkiDir, `${name}.enc.key.pem`), 'PRIVATE KEY'),
  );
  return {
    signer: await signingKeyFromPem(keyPem),
    decryptionKey,
    certPem: read(pkiDir, `${name}.pem`),
    keyPem,
  };
}

export interface PartyRuntime<DB extends AuditTables> {
  readonly keys: PartyKeys;
  readonly pki: LoadedPki;
  readonly database: Database<DB>;
  readonly audit: AuditStore;
  readonly dir: string;
}

export async function startParty<DB extends AuditTables>(
  c: FederationConfig,
  party: PartyName,
  migrations: Record<string, Migration>,
): Promise<PartyRuntime<DB>> {
  const dir = partyDir(c, party);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = await loadPartyKeys(c.pkiDir, party);
  const pki = await loadPkiDir(c.pkiDir);
  const database = await openDatabase<DB>({
    ...(c.databaseUrl
      ? { url: c.databaseUrl, schema: `${c.dbSchemaPrefix}_${party}` }
      : { file: join(dir, `${party}.sqlite`) }),
    migrationTable: `${party}_migrations`,
    migrations,
  });
  // Every party's checkpoints go to the witness at the authority (the authority's own: docs/security.md).
  const witness = mtlsWitness(urls(c).authority, () => ({
    cert: keys.certPem,
    key: keys.keyPem,
    pki,
  }));
  // The audit repository's collectors, if any: each record also goes out as a syslog audit message.
  const collectors = c.auditSyslog.parties[party];
  const forward = collectors.length
    ? new AuditSyslog((database as unknown as Database<AuditTables>).db, collectors, {
        tls: syslogTls(c.auditSyslog.caFile, pki.root.toString('pem'), {
          cert: keys.certPem,
          key: keys.keyPem,
        }),
        ...(c.auditSyslog.site ? { site: c.auditSyslog.site } : {}),
        onState: (collector, state, error) =>
          process.stderr.write(
            `${party}: audit collector ${collector} ${state}${error ? `: ${error}` : ''}\n`,
          ),
      })
    : undefined;
  const audit = new AuditStore(
    database as unknown as Database<AuditTables>,
    party,
    keys.signer,
    100,
    undefined,
    { ...(party === 'authority' ? {} : { witness }), ...(forward ? { forward } : {}) },
  );
  return { keys, pki, database, audit, dir };
}

/**
 * The party's live view of the federation's trust: its PKI directory, with the authority's current
 * trust group and CRL and the consumer hospital's device CRL fetched over mutual TLS, now and then
 * every 5 s in the background (a party that starts before the authority answers catches up then).
 */
export async function partyTrust<DB extends AuditTables>(
  c: FederationConfig,
  rt: PartyRuntime<DB>,
): Promise<LiveTrust> {
  const u = urls(c);
  const trust = new LiveTrust(
    rt.pki,
    { cert: rt.keys.certPem, key: rt.keys.keyPem },
    { authority: u.authority, deviceCrls: [`${u.consumer}/crl.pem`] },
  );
  await trust.fresh(true).catch(() => undefined);
  return trust.startRefreshing();
}

/**
 * The party's policy engine: the signed policy files of the federation's data directory (or
 * ZTV_POLICIES), persons confirmed by the consumer hospital's directory.
 */
export function partyPolicy(
  c: FederationConfig,
  trust: LiveTrust,
  more: Pick<PolicyEngineSetup, 'isRevoked'> = {},
): Promise<PolicyEngine> {
  return loadPolicyEngine(trust, {
    dir: policyDir(c.dataDir),
    directories: { consumer: urls(c).consumer },
    ...more,
  });
}

/**
 * The party's session server for clinicians' devices: its organisation key, device chains checked
 * against the live trust, every refusal in its audit chain. A refusal that shows an attack or a fault
 * (a bad certificate or signature, a replayed challenge, a message that does not open, a body outside
 * its schema) is a Security Alert (110113 `session-refused`). A session the party no longer holds —
 * closed, expired, or opened before the service restarted — is not: the device simply opens a new
 * one, and the record is a minor failure of authentication (110114 `session-stale`), saying whether
 * the session came from an earlier run of the service (docs/services.md, "Stale sessions").
 */
export function partySessions(
  rt: { readonly keys: Pick<PartyKeys, 'signer' | 'certPem'>; readonly audit: AuditStore },
  trust: LiveTrust,
  idPrefix?: number,
): SessionServer {
  const server: SessionServer = new SessionServer({
    ...(idPrefix === undefined ? {} : { idPrefix }),
    credentials: { signer: rt.keys.signer, chain: [rt.keys.certPem] },
    validateClient: async (chain) => {
      await trust.fresh().catch(() => undefined);
      return deviceValidator(() => trust.view())(chain);
    },
    onRefusal: (reason, message, sessionId) =>
      rt.audit
        .append(
          STALE_SESSION_REFUSALS.has(reason)
            ? {
                event: '110114',
                subtype: 'session-stale',
                action: 'E',
                outcome: 4,
                actor: { id: 'unknown' },
                objects: [],
                details: {
                  reason,
                  message,
                  earlierRun: server.issuedByEarlierRun(sessionId),
                },
              }
            : {
                event: '110113',
                subtype: 'session-refused',
                action: 'E',
                outcome: 8,
                actor: { id: 'unknown' },
                objects: [],
                details: { reason, message },
              },
        )
        .then(() => undefined),
  });
  return server;
}

/** Tells the launcher this party listens (one JSON line on stdout). */
export function announce(party: string, ports: Record<string, number>): void {
  process.stdout.write(`${JSON.stringify({ ready: party, ports })}\n`);
}

/** Closes everything on SIGINT/SIGTERM, so Ctrl-C stops cleanly. */
export function onShutdown(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    void close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
