/**
 * A party's audit chain in its database: appends serialised on a head row (SELECT … FOR UPDATE on
 * PostgreSQL, so replicas sharing a database never fork the chain; SQLite has a single writer), each
 * record signed with the party's key, a signed checkpoint every N records — and, with a witness, every
 * T seconds the head moved and at every auditor read — each sent to the witness outside this database
 * (queued here until it answers: a party that cannot reach it keeps working and says so in its
 * status); queries by actor, object, event and time; verification of the stored chain against the
 * witness's statement.
 */
import { PostgresAdapter, sql, type Kysely, type Migration } from 'kysely';
import { randomBytes, toBase64Url, toHex } from '../../core/bytes.ts';
import type { SigningKey, VerifyKey } from '../../core/crypto/keys.ts';
import {
  checkpointMessage,
  contentDigest,
  GENESIS,
  nextRecord,
  RECORD_VERSION,
  signRecord,
  type AuditEntry,
  type AuditRecord,
  type Checkpoint,
  type Cosignature,
} from '../../core/audit/record.ts';
import { verifyChain, type ChainReport } from '../../core/audit/verify.ts';
import {
  MAX_DIGESTS,
  verifyStatement,
  type ConflictKind,
  type Head,
  type WitnessStatus,
} from '../../core/audit/witness.ts';
import { rowToRecord } from './audit-reader.ts';
import type { CollectorState } from './audit-syslog.ts';
import type { WitnessTransport } from './audit-witness.ts';
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
    /** 2 for a v2 record (signed), null for v1. */
    v: number | null;
    key_id: string | null;
    signature: string | null;
  };
  audit_objects: { seq: number; type: string; id: string };
  audit_head: { id: number; seq: number; hash: string };
  audit_checkpoints: {
    seq: number;
    time: string;
    hash: string;
    key_id: string;
    signature: string;
    /** What the witness made of it (JSON `WitnessMark`); null while queued. */
    witness: string | null;
  };
  /** Per syslog collector (`audit-syslog.ts`): the last record it is taken to hold. */
  audit_syslog: { collector: string; seq: number };
}

/** A checkpoint's state with the witness, kept beside it. */
export type WitnessMark =
  | { readonly state: 'witnessed'; readonly cosignature: Cosignature }
  /** Not sent: the witness had already seen a later checkpoint this chain agrees with. */
  | { readonly state: 'covered'; readonly by: number }
  | {
      readonly state: 'refused';
      readonly kind: ConflictKind | 'invalid';
      readonly detail: string;
      readonly at: string;
    };

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
      .addColumn('v', 'integer')
      .addColumn('key_id', 'text')
      .addColumn('signature', 'text')
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
      .addColumn('witness', 'text')
      .execute();
  },
};

/** The v2 columns, for databases made before them (a no-op where `auditMigration` made them). */
export const auditWitnessMigration: Migration = {
  async up(db: Kysely<unknown>) {
    const added: [string, string, string][] = [
      ['audit_records', 'v', 'integer'],
      ['audit_records', 'key_id', 'text'],
      ['audit_records', 'signature', 'text'],
      ['audit_checkpoints', 'witness', 'text'],
    ];
    if (db.getExecutor().adapter instanceof PostgresAdapter) {
      for (const [table, column, type] of added)
        await sql
          .raw(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${column} ${type}`)
          .execute(db);
      return;
    }
    for (const [table, column, type] of added) {
      const cols = await sql<{
        name: string;
      }>`select name from pragma_table_info(${table})`.execute(db);
      if (!cols.rows.some((c) => c.name === column))
        await sql.raw(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`).execute(db);
    }
  },
};

/** The syslog collectors' cursors (`audit-syslog.ts`). */
export const auditSyslogMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('audit_syslog')
      .ifNotExists()
      .addColumn('collector', 'text', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .execute();
  },
};

/** Every migration of the audit chain, in order, for a service's migration list. */
export const auditMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0001_audit_syslog': auditSyslogMigration,
};

export interface AuditQuery {
  readonly actor?: string;
  readonly object?: { type: string; id: string };
  readonly event?: string;
  readonly subtype?: string;
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
}

export interface AuditStoreOptions {
  /** The witness the checkpoints go to (none: checkpoints stay in this database only). */
  readonly witness?: WitnessTransport;
  /** With a witness: a checkpoint every so often while the head moves (default 30 s). */
  readonly intervalMs?: number;
  /** Told after every committed append (the syslog forwarding, `audit-syslog.ts`); closed with the store. */
  readonly forward?: {
    wake(): unknown;
    status(): readonly CollectorState[];
    close(): Promise<void>;
  };
}

export class AuditStore {
  private readonly db: Kysely<AuditTables>;
  private readonly dialect: Dialect;
  private readonly witness: WitnessTransport | undefined;
  private readonly forward: AuditStoreOptions['forward'];
  /** The witness's latest checkpoint for this party, as last learned. */
  private known: Head | undefined;
  private status: Omit<WitnessStatus, 'pending'> = { state: 'off' };
  private flushing: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The position last checkpointed: a head that moved from it — forward, or back — is signed again. */
  private lastCheckpointed: Head | undefined;
  /** Settles once the start-up comparison with the witness is done (at once without a witness). */
  readonly started: Promise<void>;

  constructor(
    database: Pick<Database<AuditTables>, 'db' | 'dialect'>,
    readonly party: string,
    /** The party's certified organisation key: it signs records and checkpoints. */
    readonly signer: SigningKey,
    private readonly checkpointEvery = 100,
    private readonly now: () => Date = () => new Date(),
    options: AuditStoreOptions = {},
  ) {
    this.db = database.db;
    this.dialect = database.dialect;
    this.witness = options.witness;
    this.forward = options.forward;
    this.started = Promise.resolve();
    if (this.witness) {
      this.status = { state: 'pending' };
      // At start, the head is compared with what the witness saw (a restored older copy is caught
      // here), then every interval: a checkpoint if the head moved, and the queue sent.
      this.started = new Promise<void>((resolve) => setTimeout(resolve, 0).unref?.()).then(() =>
        this.startupCheck(),
      );
      this.timer = setInterval(() => void this.tick(), options.intervalMs ?? 30_000);
      this.timer.unref?.();
    }
  }

  /** Stops the periodic checkpoints (the queue stays in the database for the next start). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.started;
    await this.flushing?.catch(() => undefined);
    await this.forward?.close();
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
    const r = await signRecord(nextRecord(entry, head, this.party, this.now()), this.signer);
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
        v: r.v ?? null,
        key_id: r.keyId ?? null,
        signature: r.signature ?? null,
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

  /**
   * After an append committed: wakes the forwarding, and signs a checkpoint when `record` completes
   * another `checkpointEvery` records.
   */
  async checkpointIfDue(record: AuditRecord): Promise<void> {
    this.forward?.wake();
    if (record.seq % this.checkpointEvery === 0) {
      await this.checkpoint();
      void this.flush();
    }
  }

  private async head(): Promise<Head> {
    return this.db
      .selectFrom('audit_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
  }

  /** Signs a checkpoint of `at` (default the current head), and queues it for the witness. */
  async checkpoint(at?: Head): Promise<Checkpoint> {
    const head = at ?? (await this.head());
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
      .values({
        seq: c.seq,
        time: c.time,
        hash: c.hash,
        key_id: c.keyId,
        signature,
        witness: null,
      })
      .onConflict((oc) => oc.column('seq').doNothing())
      .execute();
    this.lastCheckpointed = { seq: c.seq, hash: c.hash };
    // One checkpoint per position: the one already stored there, if any, is the one that counts.
    const stored = await this.db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('seq', '=', c.seq)
      .executeTakeFirstOrThrow();
    return {
      seq: stored.seq,
      hash: stored.hash,
      time: stored.time,
      party: this.party,
      keyId: stored.key_id,
      signature: stored.signature,
    };
  }

  /**
   * Signs the head and waits (at most `timeoutMs`) until the witness has it: what an auditor read
   * does, so that what it is served is witnessed before the auditor asks the witness. If the witness
   * cannot be reached in time the read goes on; the checkpoint stays queued and the answer says so.
   */
  async checkpointWitnessed(timeoutMs = 5_000): Promise<WitnessStatus> {
    await this.checkpoint();
    if (this.witness) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.flush(),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    return this.witnessStatus();
  }

  /** Where each syslog collector stands (none without forwarding). */
  collectors(): readonly CollectorState[] {
    return this.forward?.status() ?? [];
  }

  async witnessStatus(): Promise<WitnessStatus> {
    if (!this.witness) return { state: 'off', pending: 0 };
    const r = await this.db
      .selectFrom('audit_checkpoints')
      .select(sql<number>`count(*)`.as('n'))
      .where('witness', 'is', null)
      .where('seq', '>', 0)
      .executeTakeFirstOrThrow();
    const pending = Number(r.n);
    const state = this.status.state === 'current' && pending > 0 ? 'pending' : this.status.state;
    return { ...this.status, state, pending };
  }

  private async tick(): Promise<void> {
    try {
      const head = await this.head();
      const last = this.lastCheckpointed;
      if (head.seq > 0 && (head.seq !== last?.seq || head.hash !== last.hash))
        await this.checkpoint(head);
      await this.flush();
    } catch {
      // The database closing under a timer at shutdown: the next start resumes from the queue.
    }
  }

  /**
   * At start: sends a checkpoint of the head as it is now, whatever the queue holds, so that a
   * database restored from an older copy (whose own checkpoints all say "witnessed") is compared
   * with what the witness saw; then the usual round.
   */
  private async startupCheck(): Promise<void> {
    try {
      const head = await this.head();
      if (head.seq > 0) {
        const c = await this.checkpoint(head);
        await this.submitOnce(c, true);
      }
    } catch (e) {
      this.unreachable(e);
    }
    await this.tick();
  }

  private unreachable(e: unknown): void {
    const since = this.status.state === 'unreachable' ? this.status.since : undefined;
    this.status = {
      state: this.status.state === 'refused' ? 'refused' : 'unreachable',
      ...(this.status.witnessed ? { witnessed: this.status.witnessed } : {}),
      ...(this.status.refused ? { refused: this.status.refused } : {}),
      since: since ?? this.now().toISOString(),
      error: (e as Error).message.slice(0, 200),
    };
  }

  /** Sends the queue to the witness, oldest first, until it is empty or the witness fails. */
  flush(): Promise<void> {
    if (!this.witness) return Promise.resolve();
    this.flushing ??= this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async drain(): Promise<void> {
    try {
      for (let rounds = 0; rounds < 64; rounds++) {
        const row = await this.db
          .selectFrom('audit_checkpoints')
          .selectAll()
          .where('witness', 'is', null)
          .where('seq', '>', 0)
          .orderBy('seq')
          .executeTakeFirst();
        if (!row) break;
        const c: Checkpoint = {
          seq: row.seq,
          hash: row.hash,
          time: row.time,
          party: this.party,
          keyId: row.key_id,
          signature: row.signature,
        };
        await this.submitOnce(c, false);
      }
      if (this.status.state !== 'refused')
        this.status = {
          state: 'current',
          ...(this.status.witnessed ? { witnessed: this.status.witnessed } : {}),
        };
    } catch (e) {
      this.unreachable(e);
    }
  }

  private async mark(seq: number, mark: WitnessMark): Promise<void> {
    await this.db
      .updateTable('audit_checkpoints')
      .set({ witness: JSON.stringify(mark) })
      .where('seq', '=', seq)
      .execute();
  }

  private async hashAt(seq: number): Promise<string | undefined> {
    return (
      await this.db
        .selectFrom('audit_records')
        .select('hash')
        .where('seq', '=', seq)
        .executeTakeFirst()
    )?.hash;
  }

  /**
   * The content digests of records `from + 1 … to`, or undefined when one is missing or v1 (a
   * range the witness cannot be shown without content).
   */
  private async digests(from: number, to: number): Promise<string[] | undefined> {
    const rows = await this.db
      .selectFrom('audit_records')
      .selectAll()
      .where('seq', '>', from)
      .where('seq', '<=', to)
      .orderBy('seq')
      .execute();
    if (rows.length !== to - from) return undefined;
    const out: string[] = [];
    for (const [i, row] of rows.entries()) {
      const r = rowToRecord(row);
      if (r.seq !== from + 1 + i || r.v !== RECORD_VERSION) return undefined;
      out.push(contentDigest(r));
    }
    return out;
  }

  /**
   * Sends one checkpoint (with the digests from the witness's latest) and records the answer. A
   * checkpoint the witness already covers with a later one this chain agrees with is not sent; one it
   * covers while this chain disagrees (rolled back, restored, forked) is sent anyway, as the party's
   * own report. `probe`: the start-up comparison, which marks nothing when the witness agrees.
   */
  private async submitOnce(c: Checkpoint, probe: boolean): Promise<void> {
    const witness = this.witness!;
    for (let attempt = 0; attempt < 4; attempt++) {
      const known = this.known;
      const behind = !!known && c.seq <= known.seq;
      if (behind) {
        // The witness has seen this far already: nothing to send if this chain still holds what it
        // saw (a replica's late checkpoint); otherwise send it, as this party's own report.
        const agrees = (await this.hashAt(known.seq)) === known.hash;
        if (agrees && (c.seq < known.seq || c.hash === known.hash))
          return probe ? undefined : this.mark(c.seq, { state: 'covered', by: known.seq });
      }
      const from = known?.seq ?? 0;
      if (!behind && known && c.seq - from > MAX_DIGESTS) {
        // Too far for one submission: bridge with a checkpoint of an intermediate record first.
        const mid = known.seq + MAX_DIGESTS;
        const hash = await this.hashAt(mid);
        if (hash) await this.submitOnce(await this.checkpoint({ seq: mid, hash }), false);
        continue;
      }
      let digests: readonly string[] = [];
      if (!behind && (from > 0 || c.seq <= MAX_DIGESTS))
        digests = (await this.digests(from, c.seq)) ?? [];
      const answer = await witness.submit({ checkpoint: c, from, digests });
      switch (answer.outcome) {
        case 'witnessed':
        case 'duplicate':
          this.known = { seq: c.seq, hash: c.hash };
          if (this.status.state !== 'refused')
            this.status = {
              state: 'current',
              witnessed: { seq: c.seq, witnessedAt: answer.cosignature.witnessedAt },
            };
          return this.mark(c.seq, { state: 'witnessed', cosignature: answer.cosignature });
        case 'stale-range':
          this.known = answer.latest.seq > 0 ? answer.latest : undefined;
          continue;
        case 'conflict':
        case 'invalid': {
          if (answer.outcome === 'conflict') this.known = answer.latest;
          const kind = answer.outcome === 'conflict' ? answer.kind : 'invalid';
          this.status = {
            state: 'refused',
            ...(this.known ? { witnessed: { seq: this.known.seq } } : {}),
            refused: { seq: c.seq, kind, detail: answer.detail },
          };
          return this.mark(c.seq, {
            state: 'refused',
            kind,
            detail: answer.detail,
            at: this.now().toISOString(),
          });
        }
      }
    }
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
    return rows.map(rowToRecord);
  }

  async all(): Promise<AuditRecord[]> {
    return (await this.db.selectFrom('audit_records').selectAll().orderBy('seq').execute()).map(
      rowToRecord,
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

  /**
   * Verifies the whole stored chain with the party's public key(s) and, with a witness, against the
   * witness's statement fetched now (the party's own view: auditors verify again themselves).
   */
  async verify(keys: readonly VerifyKey[] = [this.signer.publicKey]): Promise<ChainReport> {
    const partyKey = async (id: string) => keys.find((k) => k.keyIdHex === id);
    let witness: Parameters<typeof verifyChain>[4];
    if (this.witness && this.status.state === 'unreachable') {
      // Known to be down: an auditor's read is not held up by another attempt (docs/audit.md §3).
      witness = { unavailable: `the witness cannot be reached (since ${this.status.since})` };
    } else if (this.witness) {
      const nonce = toHex(randomBytes(16));
      try {
        const s = await this.witness.statement(this.party, nonce);
        const v = await verifyStatement(
          s,
          { party: this.party, nonce },
          this.witness.witnessKey,
          partyKey,
        );
        witness = v.ok ? v.view : { unavailable: v.reason };
      } catch (e) {
        witness = { unavailable: `the witness cannot be reached: ${(e as Error).message}` };
      }
    }
    return verifyChain(this.party, await this.all(), await this.checkpoints(), partyKey, witness);
  }

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom('audit_records')
      .select(sql<number>`count(*)`.as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
