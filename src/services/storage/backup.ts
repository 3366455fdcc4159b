/**
 * Backup and restore of one party, consistent while it runs: its database first (SQLite's online
 * backup API, or `pg_dump` of its PostgreSQL schema), then its files (blobs, outbox, key-encryption
 * key) and its own keys from the PKI directory. Rows commit after their blob is written and a stored
 * blob is never rewritten, so every row of the database copy finds its blob in the files copied after
 * it. The archive is a zip (`manifest.json`, `database/…`, `data/…`, `pki/…`); encrypted — always for
 * the producer, whose backup holds image keys — it is `ZTVBACKUP1\n` ‖ salt ‖ IV ‖ AES-256-GCM of the
 * zip under a key derived from the operator's passphrase with scrypt (N=2^15, r=8, p=1).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import BetterSqlite3 from 'better-sqlite3';
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { concatBytes, equalBytes, randomBytes, utf8 } from '../../core/bytes.ts';
import { gcmOpen, gcmSeal, GCM_IV_BYTES, importGcmKey } from '../../core/crypto/aead.ts';
import { ZtvError } from '../../core/errors.ts';
import { writeOutput } from '../common/files.ts';
import { dropSchema } from './db.ts';

const run = promisify(execFile);

/**
 * libpq's environment for a database URL, so that pg_dump and pg_restore are named the database only:
 * a password in the URL never reaches a command line (which `ps` shows to every local user).
 */
function pgEnv(url: string): { env: NodeJS.ProcessEnv; dbname: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ZtvError(
      'bad-input',
      'the database URL does not parse as a URL (postgres://user@host:port/db, or postgres:///db?host=/socket/dir)',
    );
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname.replace(/^\[|\]$/g, ''));
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  // libpq's URL parameters that say where and how to connect (a socket directory as `host`, say).
  for (const [param, name] of [
    ['host', 'PGHOST'],
    ['port', 'PGPORT'],
    ['sslmode', 'PGSSLMODE'],
  ] as const) {
    const value = u.searchParams.get(param);
    if (value) env[name] = value;
  }
  return { env, dbname: decodeURIComponent(u.pathname.slice(1)) };
}
const MAGIC = utf8('ZTVBACKUP1\n');
const SALT_BYTES = 16;
const KDF = { N: 2 ** 15, r: 8, p: 1, dkLen: 32 } as const;
export const BACKUP_FORMAT = 'ztv-backup/1';

export interface PartyLocation {
  readonly party: string;
  /** The party's data directory (`$ZTV_DATA/<party>`). */
  readonly dir: string;
  readonly pkiDir: string;
  /** PostgreSQL: the server and the party's schema; SQLite (`<dir>/<party>.sqlite`) otherwise. */
  readonly postgres?: { readonly url: string; readonly schema: string };
}

export interface Manifest {
  readonly format: typeof BACKUP_FORMAT;
  readonly party: string;
  readonly createdAt: string;
  readonly database: 'sqlite' | 'postgres';
  readonly files: number;
}

const sqliteName = (party: string) => `${party}.sqlite`;

/** Every file under `dir`, relative paths, but the live SQLite files. */
function files(dir: string, party: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && !e.name.startsWith(sqliteName(party))) out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

async function keyFrom(passphrase: string, salt: Uint8Array): Promise<CryptoKey> {
  if (passphrase.length < 12)
    throw new ZtvError('bad-input', 'a backup passphrase has at least 12 characters');
  return importGcmKey(await scryptAsync(utf8(passphrase), salt, KDF));
}

/** Backs up one party; the producer's only with a passphrase. */
export async function backupParty(
  loc: PartyLocation,
  passphrase: string | undefined,
  now = new Date(),
): Promise<{ bytes: Uint8Array; manifest: Manifest }> {
  if (loc.party === 'producer' && !passphrase)
    throw new ZtvError(
      'bad-input',
      'a producer backup holds image keys and is always encrypted: give a passphrase',
    );
  const zip: Zippable = {};
  // The database first: the files copied after it hold every blob its rows name.
  const tmp = mkdtempSync(join(tmpdir(), 'ztv-backup-'));
  try {
    if (loc.postgres) {
      const pg = pgEnv(loc.postgres.url);
      const r = await run(
        'pg_dump',
        ['--format=custom', '--no-owner', `--schema=${loc.postgres.schema}`, pg.dbname],
        { encoding: 'buffer', maxBuffer: 4 * 1024 ** 3, env: pg.env },
      ).catch((e: Error & { stderr?: Buffer }) => {
        throw new ZtvError(
          'bad-input',
          `pg_dump failed: ${e.stderr?.toString().trim().split('\n')[0] ?? e.message}`,
        );
      });
      zip['database/schema.pgdump'] = new Uint8Array(r.stdout);
    } else {
      const file = join(loc.dir, sqliteName(loc.party));
      if (!existsSync(file))
        throw new ZtvError('bad-input', `${file} does not exist: nothing to back up`);
      const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
      try {
        await db.backup(join(tmp, 'db.sqlite'));
      } finally {
        db.close();
      }
      zip[`database/${sqliteName(loc.party)}`] = new Uint8Array(
        readFileSync(join(tmp, 'db.sqlite')),
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const data = files(loc.dir, loc.party);
  for (const f of data) zip[`data/${f}`] = new Uint8Array(readFileSync(join(loc.dir, f)));
  const keys = readdirSync(loc.pkiDir).filter((f) => f.startsWith(`${loc.party}.`));
  for (const f of keys) zip[`pki/${f}`] = new Uint8Array(readFileSync(join(loc.pkiDir, f)));
  const manifest: Manifest = {
    format: BACKUP_FORMAT,
    party: loc.party,
    createdAt: now.toISOString(),
    database: loc.postgres ? 'postgres' : 'sqlite',
    files: data.length,
  };
  zip['manifest.json'] = utf8(JSON.stringify(manifest, null, 2));
  // Blobs are compressed images or ciphertext already: stored, not deflated.
  const plain = zipSync(zip, { level: 0 });
  if (!passphrase) return { bytes: plain, manifest };
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(GCM_IV_BYTES);
  const sealed = await gcmSeal(await keyFrom(passphrase, salt), iv, plain, MAGIC);
  return { bytes: concatBytes(MAGIC, salt, iv, sealed), manifest };
}

/** Opens a backup (decrypting it when it is encrypted) into its entries. */
export async function openBackup(
  bytes: Uint8Array,
  passphrase: string | undefined,
): Promise<{ manifest: Manifest; entries: Record<string, Uint8Array> }> {
  let plain = bytes;
  if (bytes.length > MAGIC.length && equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) {
    if (!passphrase) throw new ZtvError('bad-key', 'this backup is encrypted: give its passphrase');
    const salt = bytes.subarray(MAGIC.length, MAGIC.length + SALT_BYTES);
    const iv = bytes.subarray(MAGIC.length + SALT_BYTES, MAGIC.length + SALT_BYTES + GCM_IV_BYTES);
    const body = bytes.subarray(MAGIC.length + SALT_BYTES + GCM_IV_BYTES);
    plain = await gcmOpen(await keyFrom(passphrase, salt), iv, body, MAGIC, 'the backup').catch(
      () => {
        throw new ZtvError('wrong-key', 'the backup does not open: another passphrase, or altered');
      },
    );
  }
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(plain);
  } catch {
    throw new ZtvError('bad-input', 'this is not a ZTV backup (not a readable archive)');
  }
  const m = entries['manifest.json'];
  const manifest = m ? (JSON.parse(new TextDecoder().decode(m)) as Manifest) : undefined;
  if (manifest?.format !== BACKUP_FORMAT)
    throw new ZtvError('bad-input', `this is not a ZTV backup (no ${BACKUP_FORMAT} manifest)`);
  return { manifest, entries };
}

/**
 * Restores a party from its backup into an empty place (or over the existing one with `force`): the
 * database, the files, and its keys in the PKI directory where they are missing. The party must not
 * be running.
 */
export async function restoreParty(
  loc: PartyLocation,
  bytes: Uint8Array,
  passphrase: string | undefined,
  force = false,
): Promise<Manifest> {
  const { manifest, entries } = await openBackup(bytes, passphrase);
  if (manifest.party !== loc.party)
    throw new ZtvError(
      'bad-input',
      `this backup is of the ${manifest.party}, not the ${loc.party}`,
    );
  if ((manifest.database === 'postgres') !== !!loc.postgres)
    throw new ZtvError(
      'bad-input',
      `this backup holds a ${manifest.database} database; set DATABASE_URL accordingly`,
    );
  const sqlite = join(loc.dir, sqliteName(loc.party));
  if (!force && (existsSync(sqlite) || files(loc.dir, loc.party).length > 0))
    throw new ZtvError(
      'bad-input',
      `${loc.dir} is not empty: restore into an empty place, or give --force to replace it`,
    );
  if (force) rmSync(loc.dir, { recursive: true, force: true });
  mkdirSync(loc.dir, { recursive: true, mode: 0o700 });
  for (const [name, value] of Object.entries(entries)) {
    if (name.endsWith('/')) continue;
    if (name.includes('..')) throw new ZtvError('bad-input', `the backup names ${name}`);
    if (name.startsWith('data/')) {
      const path = join(loc.dir, name.slice(5));
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeOutput(path, value, 0o600);
    } else if (name.startsWith('pki/')) {
      const path = join(loc.pkiDir, name.slice(4));
      if (!existsSync(path)) writeOutput(path, value, 0o600);
    }
  }
  if (loc.postgres) {
    const dump = entries['database/schema.pgdump'];
    if (!dump) throw new ZtvError('bad-input', 'the backup holds no database dump');
    await dropSchema(loc.postgres.url, loc.postgres.schema);
    const tmp = mkdtempSync(join(tmpdir(), 'ztv-restore-'));
    try {
      writeOutput(join(tmp, 'db.pgdump'), dump, 0o600);
      const pg = pgEnv(loc.postgres.url);
      await run(
        'pg_restore',
        ['--no-owner', '--exit-on-error', `--dbname=${pg.dbname}`, join(tmp, 'db.pgdump')],
        { env: pg.env },
      ).catch((e: Error & { stderr?: string }) => {
        throw new ZtvError(
          'bad-input',
          `pg_restore failed: ${e.stderr?.trim().split('\n')[0] ?? e.message}`,
        );
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  } else {
    const db = entries[`database/${sqliteName(loc.party)}`];
    if (!db) throw new ZtvError('bad-input', 'the backup holds no database');
    writeOutput(sqlite, db, 0o600);
  }
  return manifest;
}
