/**
 * A party's audit chain in its database: appends serialised on a head row (SELECT … FOR UPDATE on
 * PostgreSQL, so replicas sharing a database never fork the chain; SQLite has a single writer), a
 * signed checkpoint every N records, queries by actor, object, event and time, and verification of the
 * stored chain.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import { toBase64Url } from '../../core/bytes.ts';
import type { SigningKey, VerifyKey } from '../../core/crypto/keys.ts';
import {
  checkpointMessage,
  GENESIS,
  nextRecord,
  type AuditEntry,
  type AuditRecord,
  type Checkpoint,
} from '../../core/audit/record.ts';
import { verifyChain, type ChainReport } from '../../core/audit/verify.ts';
import type { Database, Dialect } from './db.ts';

export interface AuditTables {
  audit_records: {
    seq: number;
    time: string;
    party: string;
    event: string;
    subtype: string;
    action: string;
    outcome: number;
    actor_id: string;
    actor: string;
    objects: string;
    details: string;
    prev: string;
    hash: string;
  };
  audit_objects: { seq: number; type: string; id: string };
  audit_head: { id: number; seq: number; hash: string };
  audit_checkpoints: { seq: number; time: string; hash: string; key_id: string; signature: string };
}

/** The audit tables, for any service's migration list. */
export const auditMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('audit_records')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('party', 'text', (c) => c.notNull())
      .addColumn('event', 'text', (c) => c.notNull())
      .addColumn('subtype', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('outcome', 'integer', (c) => c.notNull())
      .addColumn('actor_id', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('objects', 'text', (c) => c.notNull())
      .addColumn('details', 'text', (c) => c.notNull())
      .addColumn('prev', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('audit_records_actor')
      .on('audit_records')
      .column('actor_id')
      .execute();
    await db.schema.createIndex('audit_records_time').on('audit_records').column('time').execute();
    await db.schema
      .createTable('audit_objects')
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('audit_objects_id')
      .on('audit_objects')
      .columns(['type', 'id'])
      .execute();
    await db.schema
      .createTable('audit_head')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await (db as Kysely<Pick<AuditTables, 'audit_head'>>)
      .insertInto('audit_head')
      .values({ id: 1, seq: 0, hash: GENESIS })
      .execute();
    await db.schema
      .createTable('audit_checkpoints')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('signature', 'text', (c) => c.notNull())
      .execute();
  },
};

type Row = AuditTables['audit_records'];

const toRecord = (r: Row): AuditRecord => ({
  seq: r.seq,
  time: r.time,
  party: r.party,
  event: r.event as AuditRecord['event'],
  subtype: r.subtype,
  action: r.action as AuditRecord['action'],
  outcome: r.outcome as AuditRecord['outcome'],
  actor: JSON.parse(r.actor) as AuditRecord['actor'],
  objects: JSON.parse(r.objects) as AuditRecord['objects'],
  details: JSON.parse(r.details) as AuditRecord['details'],
  prev: r.prev,
  hash: r.hash,
});

export interface AuditQuery {
  readonly actor?: string;
  readonly object?: { type: string; id: string };
  readonly event?: string;
  readonly subtype?: string;
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
}

export class AuditStore {
  private readonly db: Kysely<AuditTables>;
  private readonly dialect: Dialect;

  constructor(
    database: Pick<Database<AuditTables>, 'db' | 'dialect'>,
    readonly party: string,
    private readonly signer: SigningKey,
    private readonly checkpointEvery = 100,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.db = database.db;
    this.dialect = database.dialect;
  }

  /** Appends one record; returns it. The chain head is locked for the transaction. */
  async append(entry: AuditEntry): Promise<AuditRecord> {
    const record = await this.db.transaction().execute((trx) => this.appendIn(trx, entry));
    await this.checkpointIfDue(record);
    return record;
  }

  /**
   * Appends one record inside the caller's transaction, so that the record and the change it
   * reports commit together or not at all. Call `checkpointIfDue` once the transaction committed.
   */
  async appendIn(trx: Kysely<AuditTables>, entry: AuditEntry): Promise<AuditRecord> {
    // PostgreSQL: lock the head row so concurrent replicas append one after the other. SQLite has
    // one writer per database file; its transactions are already serial.
    const head = await trx
      .selectFrom('audit_head')
      .selectAll()
      .where('id', '=', 1)
      .$if(this.dialect === 'postgres', (q) => q.forUpdate())
      .executeTakeFirstOrThrow();
    const r = nextRecord(entry, head, this.party, this.now());
    await trx
      .insertInto('audit_records')
      .values({
        seq: r.seq,
        time: r.time,
        party: r.party,
        event: r.event,
        subtype: r.subtype,
        action: r.action,
        outcome: r.outcome,
        actor_id: r.actor.id,
        actor: JSON.stringify(r.actor),
        objects: JSON.stringify(r.objects),
        details: JSON.stringify(r.details),
        prev: r.prev,
        hash: r.hash,
      })
      .execute();
    if (r.objects.length)
      await trx
        .insertInto('audit_objects')
        .values(r.objects.map((o) => ({ seq: r.seq, type: o.type, id: o.id })))
        .execute();
    await trx
      .updateTable('audit_head')
      .set({ seq: r.seq, hash: r.hash })
      .where('id', '=', 1)
      .execute();
    return r;
  }

  /** Signs a checkpoint when `record` completes another `checkpointEvery` records. */
  async checkpointIfDue(record: AuditRecord): Promise<void> {
    if (record.seq % this.checkpointEvery === 0) await this.checkpoint();
  }

  /** Signs the current head (also called every `checkpointEvery` records). */
  async checkpoint(): Promise<Checkpoint> {
    const head = await this.db
      .selectFrom('audit_head')
      .selectAll()
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const base = {
      seq: head.seq,
      hash: head.hash,
      time: this.now().toISOString(),
      party: this.party,
    };
    const signature = toBase64Url(await this.signer.sign(checkpointMessage(base)));
    const c: Checkpoint = { ...base, keyId: this.signer.publicKey.keyIdHex, signature };
    await this.db
      .insertInto('audit_checkpoints')
      .values({ seq: c.seq, time: c.time, hash: c.hash, key_id: c.keyId, signature })
      .onConflict((oc) => oc.column('seq').doNothing())
      .execute();
    return c;
  }

  async query(q: AuditQuery = {}): Promise<AuditRecord[]> {
    let s = this.db.selectFrom('audit_records').selectAll('audit_records');
    if (q.actor) s = s.where('actor_id', '=', q.actor);
    if (q.event) s = s.where('event', '=', q.event);
    if (q.subtype) s = s.where('subtype', '=', q.subtype);
    if (q.from) s = s.where('time', '>=', q.from);
    if (q.to) s = s.where('time', '<=', q.to);
    if (q.object) {
      const o = q.object;
      s = s.where(
        'seq',
        'in',
        this.db
          .selectFrom('audit_objects')
          .select('seq')
          .where('type', '=', o.type)
          .where('id', '=', o.id),
      );
    }
    const rows = await s
      .orderBy('seq')
      .limit(q.limit ?? 10_000)
      .execute();
    return rows.map(toRecord);
  }

  async all(): Promise<AuditRecord[]> {
    return (await this.db.selectFrom('audit_records').selectAll().orderBy('seq').execute()).map(
      toRecord,
    );
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const rows = await this.db.selectFrom('audit_checkpoints').selectAll().orderBy('seq').execute();
    return rows.map((r) => ({
      seq: r.seq,
      hash: r.hash,
      time: r.time,
      party: this.party,
      keyId: r.key_id,
      signature: r.signature,
    }));
  }

  /** Verifies the whole stored chain with the party's public key(s). */
  async verify(keys: readonly VerifyKey[] = [this.signer.publicKey]): Promise<ChainReport> {
    return verifyChain(this.party, await this.all(), await this.checkpoints(), async (id) =>
      keys.find((k) => k.keyIdHex === id),
    );
  }

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom('audit_records')
      .select(sql<number>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
