/**
 * Read-only access to a party's stored audit chain, for auditors' tools: an SQLite file opened
 * read-only, or a PostgreSQL schema, queried as they are — no migrations run, nothing written — so
 * that verifying a database can never change it. Rows become records exactly as the services store
 * them; verification then needs only the party's public key.
 */
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { AuditRecord, Checkpoint } from '../../core/audit/record.ts';
import { ZtvError } from '../../core/errors.ts';
import type { AuditTables } from './audit-store.ts';

// int8 columns (sequence numbers) as numbers, as the services read them (see db.ts).
pg.types.setTypeParser(20, (v: string) => Number(v));

export interface StoredChain {
  readonly party: string;
  readonly records: AuditRecord[];
  readonly checkpoints: Checkpoint[];
}

export interface ChainSource {
  /** An SQLite database file… */
  readonly file?: string;
  /** …or a postgres:// URL and the party's schema. */
  readonly url?: string;
  readonly schema?: string;
}

type Row = AuditTables['audit_records'];

const parse = (text: string, what: string, seq: number): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    // A rewritten row may not even be JSON: keep it as text, so verification names the record.
    return `unparseable ${what} of record ${seq}: ${text.slice(0, 80)}`;
  }
};

/** A stored row as a record; the v2 columns are absent in a database the services never upgraded. */
export const rowToRecord = (r: Row): AuditRecord => ({
  seq: Number(r.seq),
  time: r.time,
  party: r.party,
  event: r.event as AuditRecord['event'],
  subtype: r.subtype,
  action: r.action as AuditRecord['action'],
  outcome: Number(r.outcome) as AuditRecord['outcome'],
  actor: parse(r.actor, 'actor', r.seq) as AuditRecord['actor'],
  objects: parse(r.objects, 'objects', r.seq) as AuditRecord['objects'],
  details: parse(r.details, 'details', r.seq) as AuditRecord['details'],
  prev: r.prev,
  hash: r.hash,
  ...(r.v != null ? { v: Number(r.v) as 2 } : {}),
  ...(r.key_id != null ? { keyId: r.key_id } : {}),
  ...(r.signature != null ? { signature: r.signature } : {}),
});

async function open(src: ChainSource): Promise<Kysely<AuditTables>> {
  if (src.url) {
    if (!/^postgres(ql)?:\/\//.test(src.url))
      throw new ZtvError('bad-input', 'the database URL must be postgres://…');
    const schema = src.schema ?? '';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
      throw new ZtvError('bad-input', 'give the party schema (e.g. ztv_producer) of the database');
    const pool = new pg.Pool({ connectionString: src.url, max: 1 });
    pool.on('connect', (client) => void client.query(`SET search_path TO "${schema}"`));
    return new Kysely<AuditTables>({ dialect: new PostgresDialect({ pool }) });
  }
  if (!src.file) throw new ZtvError('bad-input', 'give an SQLite file or a PostgreSQL URL');
  let db: SQLite.Database;
  try {
    db = new SQLite(src.file, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new ZtvError(
      'bad-input',
      `cannot open ${src.file} as an SQLite database: ${(e as Error).message}`,
    );
  }
  return new Kysely<AuditTables>({ dialect: new SqliteDialect({ database: db }) });
}

/** Reads the whole chain and its checkpoints; `party` defaults to the party the records name. */
export async function readStoredChain(src: ChainSource, party?: string): Promise<StoredChain> {
  const db = await open(src);
  try {
    let rows: Row[];
    let cps: AuditTables['audit_checkpoints'][];
    try {
      rows = await db.selectFrom('audit_records').selectAll().orderBy('seq').execute();
      cps = await db.selectFrom('audit_checkpoints').selectAll().orderBy('seq').execute();
    } catch (e) {
      throw new ZtvError(
        'bad-input',
        `the database holds no audit chain (${(e as Error).message.split('\n')[0]})`,
      );
    }
    const records = rows.map(rowToRecord);
    const name = party ?? records[0]?.party ?? 'unknown';
    return {
      party: name,
      records,
      checkpoints: cps.map((c) => ({
        seq: Number(c.seq),
        hash: c.hash,
        time: c.time,
        party: name,
        keyId: c.key_id,
        signature: c.signature,
      })),
    };
  } finally {
    await db.destroy();
  }
}
