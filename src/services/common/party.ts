/**
 * What every service process does at start: load its own keys and certificate from the PKI directory,
 * open its database (its own SQLite file, or its own PostgreSQL schema), its audit chain, and announce
 * itself on stdout when listening, so that the launcher knows it is up.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Migration } from 'kysely';
import { pemDecode, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import { ZtvError } from '../../core/errors.ts';
import { AuditStore, type AuditTables } from '../storage/audit-store.ts';
import { openDatabase, type Database } from '../storage/db.ts';
import { partyDir, type FederationConfig, type PartyName } from './config.ts';
import { loadPkiDir, type LoadedPki } from './pki-dir.ts';

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
  const decryptionKey = await crypto.subtle.importKey(
    'pkcs8',
    pemDecode(read(pkiDir, `${name}.enc.key.pem`), 'PRIVATE KEY') as Uint8Array<ArrayBuffer>,
    { name: 'ECDH', namedCurve: 'P-256' },
    false,
    ['deriveBits', 'deriveKey'],
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
  const audit = new AuditStore(database as unknown as Database<AuditTables>, party, keys.signer);
  return { keys, pki, database, audit, dir };
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
