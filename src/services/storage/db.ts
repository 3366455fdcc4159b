/**
 * One query layer, Kysely, over embedded SQLite (better-sqlite3, the default: a file in the service's
 * data directory) or PostgreSQL (`DATABASE_URL`), with each service's migrations run at open. On
 * PostgreSQL a service may live in its own schema, so that several services — or several test runs —
 * share one database without touching each other's tables.
 */
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Migration } from 'kysely';
import pg from 'pg';
import { ZtvError } from '../../core/errors.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface DatabaseOptions {
  /** postgres://… to use PostgreSQL; otherwise SQLite in `file`. */
  readonly url?: string;
  readonly file?: string;
  /** PostgreSQL schema to live in (created when missing). */
  readonly schema?: string;
  /** Name of the migrations table (one per service). */
  readonly migrationTable: string;
  readonly migrations: Readonly<Record<string, Migration>>;
  readonly poolSize?: number;
}

export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly dialect: Dialect;
  close(): Promise<void>;
}

// int8 (bigint) columns hold millisecond times and sequence numbers: all within 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

const ident = (s: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(s))
    throw new ZtvError('bad-input', `invalid SQL identifier ${s}`);
  return s;
};

export async function openDatabase<DB>(opts: DatabaseOptions): Promise<Database<DB>> {
  let db: Kysely<DB>;
  let dialect: Dialect;
  if (opts.url && /^postgres(ql)?:\/\//.test(opts.url)) {
    dialect = 'postgres';
    const schema = opts.schema ? ident(opts.schema) : undefined;
    if (schema) {
      const admin = new pg.Client({ connectionString: opts.url });
      await admin.connect();
      try {
        await admin.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      } finally {
        await admin.end();
      }
    }
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10 });
    if (schema) pool.on('connect', (client) => void client.query(`SET search_path TO "${schema}"`));
    db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  } else {
    if (!opts.file)
      throw new ZtvError(
        'bad-input',
        'an SQLite database needs a file (or give a postgres:// URL)',
      );
    dialect = 'sqlite';
    const sqlite = new SQLite(opts.file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('synchronous = FULL');
    db = new Kysely<DB>({ dialect: new SqliteDialect({ database: sqlite }) });
  }
  const schema = dialect === 'postgres' && opts.schema ? ident(opts.schema) : undefined;
  const migrator = new Migrator({
    db,
    migrationTableName: ident(opts.migrationTable),
    migrationLockTableName: ident(`${opts.migrationTable}_lock`),
    // Kysely looks for its tables in every schema unless told which: a service's own schema, so that
    // another schema's migration tables (another federation, a test run that stopped) do not count.
    ...(schema ? { migrationTableSchema: schema } : {}),
    provider: { getMigrations: async () => ({ ...opts.migrations }) },
    // A concern's later migration (the audit chain's witness columns) may sort before another's
    // that a database already ran: each concern's migrations keep their own order.
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new ZtvError(
      'bad-input',
      `database migration ${failed ?? ''} failed: ${(error as Error).message}`,
    );
  }
  return { db, dialect, close: () => db.destroy() };
}

/** Drops a PostgreSQL schema and everything in it (tests, demo resets). */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${ident(schema)}" CASCADE`);
  } finally {
    await admin.end();
  }
}

export { sql };
