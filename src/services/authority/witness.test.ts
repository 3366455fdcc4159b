// The witness at the authority and a party's audit store sending it checkpoints, on SQLite and
// PostgreSQL, with the federation's real certificates (the TLS hop is exercised in test/audit.test.ts):
// checkpoints are accepted only when they extend what was witnessed, countersigned and kept; a party
// that cannot reach the witness keeps appending, queues, says so, and catches up; a chain cut, rolled
// back and continued, restored from an older copy, or re-signed into another history is refused by the
// witness (kept as the party's own signed evidence) and named by verification; only the member whose
// certificate names the party may submit for it.
import Fastify from 'fastify';
import { sql, type Kysely, type Migration } from 'kysely';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, openTestDatabase, type TestDatabase } from '../../../test/databases.ts';
import {
  cosignatureMessage,
  GENESIS,
  nextRecord,
  recordHash,
  signRecord,
  type AuditEntry,
} from '../../core/audit/record.ts';
import { verifyStatement } from '../../core/audit/witness.ts';
import { fromBase64Url, randomBytes, toHex } from '../../core/bytes.ts';
import { signingKeyFromCryptoKeys, type SigningKey } from '../../core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import { openDatabase, type Dialect } from '../storage/db.ts';
import { AuditStore, auditMigrations, type AuditTables } from '../storage/audit-store.ts';
import type { WitnessTransport } from '../storage/audit-witness.ts';
import { authorityMigrations, Authority, type AuthorityTables } from './app.ts';
import { Witness, WitnessError, witnessPlugin } from './witness.ts';

const entry = (n: number): AuditEntry => ({
  event: '110112',
  subtype: 'request-logged',
  action: 'R',
  outcome: 0,
  actor: { id: 'dr.bob', role: 'physician' },
  objects: [{ type: 'ticket', id: `t-${n}` }],
  details: { n, purpose: 'treatment' },
});

/** The audit tables as the first databases had them (v1 records, no witness column). */
const v1Migration: Migration = {
  async up(db: Kysely<unknown>) {
    let t = db.schema
      .createTable('audit_records')
      .addColumn('seq', 'bigint', (c) => c.primaryKey());
    for (const c of [
      'time',
      'party',
      'event',
      'subtype',
      'action',
      'actor_id',
      'actor',
      'objects',
      'details',
      'prev',
      'hash',
    ])
      t = t.addColumn(c, 'text', (x) => x.notNull());
    await t.addColumn('outcome', 'integer', (c) => c.notNull()).execute();
    await db.schema
      .createTable('audit_objects')
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('audit_head')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
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

let pki: DemoPki;
let signers: Record<'authority' | 'producer' | 'cloud', SigningKey>;

beforeAll(async () => {
  pki = await createDemoPki();
  const s = (role: 'authority' | 'producer' | 'cloud') =>
    signingKeyFromCryptoKeys(
      'ECDSA-P256',
      pki.organisations[role].keys.privateKey,
      pki.organisations[role].keys.publicKey,
    );
  signers = {
    authority: await s('authority'),
    producer: await s('producer'),
    cloud: await s('cloud'),
  };
});

describe.each(DIALECTS)('the audit witness on %s', (dialect: Dialect) => {
  let open: TestDatabase<unknown>[] = [];
  const stores: AuditStore[] = [];

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const t of open.splice(0)) await t.cleanup();
    open = [];
  });

  /**
   * An authority with its witness, the producer's store wired to it, a switch to cut the line. `v1`:
   * the producer's database made as the first ones were, holding v1 records, then opened (upgraded)
   * by today's code.
   */
  async function setup(v1?: readonly AuditEntry[]) {
    const auth = await openTestDatabase<AuthorityTables>(
      dialect,
      'authority_migrations',
      authorityMigrations,
    );
    let party = await openTestDatabase<AuditTables>(
      dialect,
      'producer_migrations',
      v1 ? { '0001_audit': v1Migration } : auditMigrations,
    );
    open.push(auth as TestDatabase<unknown>, party as TestDatabase<unknown>);
    if (v1) {
      let head = { seq: 0, hash: GENESIS };
      for (const [i, e] of v1.entries()) {
        const { v: _v, ...r } = nextRecord(
          e,
          head,
          'producer',
          new Date(Date.now() - 3600_000 + i),
        );
        const hash = recordHash(r);
        await party.database.db
          .insertInto('audit_records')
          .values({
            ...r,
            actor_id: r.actor.id,
            actor: JSON.stringify(r.actor),
            objects: JSON.stringify(r.objects),
            details: JSON.stringify(r.details),
            hash,
          } as never)
          .execute();
        head = { seq: r.seq, hash };
      }
      await party.database.db
        .insertInto('audit_head')
        .values({ id: 1, ...head })
        .execute();
      const upgraded = await openDatabase<AuditTables>({
        ...party.options,
        migrationTable: 'producer_migrations',
        migrations: auditMigrations,
      });
      const first = party;
      party = {
        ...first,
        database: upgraded,
        cleanup: async () => {
          await upgraded.close();
          await first.cleanup();
        },
      };
      open[open.length - 1] = party as TestDatabase<unknown>;
    }
    const authority = new Authority({
      database: auth.database,
      root: pki.root,
    });
    for (const role of ['authority', 'producer', 'cloud'] as const)
      await authority.importCertificate(pki.organisations[role].cert, role, role, role);
    const authorityLog = new AuditStore(auth.database, 'authority', signers.authority);
    const witness = new Witness(auth.database, signers.authority, authorityLog);
    const line = { down: false, peer: pki.organisations.producer.cert };
    const transport: WitnessTransport = {
      submit: async (s) => {
        if (line.down) throw new Error('connect ECONNREFUSED');
        return witness.submit(line.peer, s);
      },
      statement: async (p, nonce) => {
        if (line.down) throw new Error('connect ECONNREFUSED');
        return witness.statement(p, nonce);
      },
      witnessKey: async (id) =>
        id === signers.authority.publicKey.keyIdHex ? signers.authority.publicKey : undefined,
    };
    const store = (every = 5, intervalMs = 3600_000) => {
      const s = new AuditStore(party.database, 'producer', signers.producer, every, undefined, {
        witness: transport,
        intervalMs,
      });
      stores.push(s);
      return s;
    };
    /** A store whose start-up comparison is done (so that the checkpoints below are the test's). */
    const started = async (every = 5, intervalMs?: number) => {
      const s = store(every, intervalMs);
      await s.started;
      return s;
    };
    const statement = async () => {
      const nonce = toHex(randomBytes(16));
      const s = await witness.statement('producer', nonce);
      const v = await verifyStatement(
        s,
        { party: 'producer', nonce },
        transport.witnessKey,
        async (id) =>
          id === signers.producer.publicKey.keyIdHex ? signers.producer.publicKey : undefined,
      );
      if (!v.ok) throw new Error(v.reason);
      return s;
    };
    return {
      db: party.database.db,
      authDb: auth.database.db,
      witness,
      line,
      store,
      started,
      statement,
      authorityLog,
    };
  }

  const kinds = (r: { breaks: readonly { seq: number; kind: string }[] }) =>
    r.breaks.map((b) => `${b.seq}:${b.kind}`);

  it('witnesses and countersigns checkpoints that extend the chain; the chain then verifies complete', async () => {
    const t = await setup();
    const log = await t.started();
    for (let n = 1; n <= 12; n++) await log.append(entry(n));
    const status = await log.checkpointWitnessed();
    expect(status).toMatchObject({ state: 'current', pending: 0, witnessed: { seq: 12 } });
    const s = await t.statement();
    expect(s.latest?.seq).toBe(12);
    expect(s.history.map((c) => c.seq)).toEqual([5, 10, 12]);
    expect(s.conflicts).toEqual([]);
    // The receipt kept beside the checkpoint is the witness's signature over it.
    const row = await t.db
      .selectFrom('audit_checkpoints')
      .select(['seq', 'hash', 'time', 'witness'])
      .where('seq', '=', 12)
      .executeTakeFirstOrThrow();
    const mark = JSON.parse(row.witness!) as {
      state: string;
      cosignature: { witnessedAt: string; signature: string };
    };
    expect(mark.state).toBe('witnessed');
    expect(
      await signers.authority.publicKey.verify(
        fromBase64Url(mark.cosignature.signature),
        cosignatureMessage({ ...row, party: 'producer' }, mark.cosignature.witnessedAt),
      ),
    ).toBe(true);
    const report = await log.verify();
    expect(report).toMatchObject({
      ok: true,
      witness: { consulted: true, reached: true, unwitnessed: 0 },
    });
  });

  it('a party that cannot reach the witness keeps appending, queues, says since when, and catches up', async () => {
    const t = await setup();
    const log = await t.started(4);
    for (let n = 1; n <= 5; n++) await log.append(entry(n));
    await log.checkpointWitnessed();
    t.line.down = true;
    for (let n = 6; n <= 13; n++) await log.append(entry(n));
    const down = await log.checkpointWitnessed(500);
    expect(down.state).toBe('unreachable');
    expect(down.pending).toBe(3); // 8, 12 and 13
    expect(down.since).toMatch(/^\d{4}-/);
    expect(down.error).toContain('ECONNREFUSED');
    expect(await log.count()).toBe(13);
    // The party's own verification cannot call its chain complete meanwhile.
    const unsure = await log.verify();
    expect(unsure.ok).toBe(true);
    expect(unsure.witness).toMatchObject({ consulted: false });
    t.line.down = false;
    await log.flush();
    expect(await log.witnessStatus()).toMatchObject({ state: 'current', pending: 0 });
    expect((await t.statement()).history.map((c) => c.seq)).toEqual([4, 5, 8, 12, 13]);
  });

  it('a chain cut after the witness saw it is truncated', async () => {
    const t = await setup();
    const log = await t.started();
    for (let n = 1; n <= 7; n++) await log.append(entry(n));
    await log.checkpointWitnessed();
    await sql`DELETE FROM audit_records WHERE seq = 7`.execute(t.db);
    await sql`DELETE FROM audit_checkpoints WHERE seq = 7`.execute(t.db);
    expect(kinds(await log.verify())).toEqual(['7:truncated']);
  });

  it('a chain rolled back and continued by the running party is refused as rolled back, and named so', async () => {
    const t = await setup();
    const log = await t.started();
    for (let n = 1; n <= 9; n++) await log.append(entry(n));
    await log.checkpointWitnessed();
    // Records 7–9 deleted with their checkpoints, the head set back to 6: the party appends on.
    const six = await t.db
      .selectFrom('audit_records')
      .select('hash')
      .where('seq', '=', 6)
      .executeTakeFirstOrThrow();
    await sql`DELETE FROM audit_records WHERE seq > 6`.execute(t.db);
    await sql`DELETE FROM audit_checkpoints WHERE seq > 6`.execute(t.db);
    await sql`UPDATE audit_head SET seq = 6, hash = ${six.hash}`.execute(t.db);
    await log.append(entry(70));
    const status = await log.checkpointWitnessed();
    expect(status).toMatchObject({ state: 'refused', refused: { seq: 7, kind: 'rolled-back' } });
    const s = await t.statement();
    expect(s.latest?.seq).toBe(9);
    expect(s.conflicts.map((c) => [c.kind, c.checkpoint.seq])).toEqual([['rolled-back', 7]]);
    expect(kinds(await log.verify())).toEqual(['7:rolled-back', '8:truncated']);
    // The authority's own chain logs the refusal as a security alert.
    const alerts = await t.authorityLog.query({ subtype: 'witness-conflict' });
    expect(alerts.map((a) => a.details)).toEqual([
      expect.objectContaining({ kind: 'rolled-back', seq: 7, witnessedSeq: 9 }),
    ]);
  });

  it('a running party whose head is set back is refused at its next interval, with no append or read', async () => {
    const t = await setup();
    const log = await t.started(100, 150);
    for (let n = 1; n <= 6; n++) await log.append(entry(n));
    await expect.poll(async () => (await t.statement()).latest?.seq, { timeout: 10_000 }).toBe(6);
    const four = await t.db
      .selectFrom('audit_records')
      .select('hash')
      .where('seq', '=', 4)
      .executeTakeFirstOrThrow();
    await sql`DELETE FROM audit_records WHERE seq > 4`.execute(t.db);
    await sql`UPDATE audit_head SET seq = 4, hash = ${four.hash}`.execute(t.db);
    await expect
      .poll(async () => (await log.witnessStatus()).state, { timeout: 10_000 })
      .toBe('refused');
    expect((await t.statement()).conflicts.map((c) => [c.kind, c.checkpoint.seq])).toEqual([
      ['rolled-back', 4],
    ]);
  });

  it('a database restored from an older copy is caught when the party starts', async () => {
    const t = await setup();
    const log = await t.started();
    for (let n = 1; n <= 4; n++) await log.append(entry(n));
    await log.checkpointWitnessed();
    const copy = {
      records: await t.db.selectFrom('audit_records').selectAll().execute(),
      checkpoints: await t.db.selectFrom('audit_checkpoints').selectAll().execute(),
      head: await t.db.selectFrom('audit_head').selectAll().execute(),
    };
    for (let n = 5; n <= 8; n++) await log.append(entry(n));
    await log.checkpointWitnessed();
    await log.close();
    // The backup put back: every checkpoint in it says "witnessed".
    await sql`DELETE FROM audit_records`.execute(t.db);
    await sql`DELETE FROM audit_checkpoints`.execute(t.db);
    await sql`DELETE FROM audit_head`.execute(t.db);
    await t.db.insertInto('audit_records').values(copy.records).execute();
    await t.db.insertInto('audit_checkpoints').values(copy.checkpoints).execute();
    await t.db.insertInto('audit_head').values(copy.head).execute();
    const restarted = t.store();
    await expect
      .poll(async () => (await restarted.witnessStatus()).state, { timeout: 10_000 })
      .toBe('refused');
    expect((await restarted.witnessStatus()).refused).toMatchObject({
      seq: 4,
      kind: 'rolled-back',
    });
    expect(kinds(await restarted.verify())).toEqual(['4:rolled-back', '5:truncated']);
  });

  it('a party that re-signs another history with its own key is refused as forked, and the rewrite named', async () => {
    const t = await setup();
    const log = await t.started();
    for (let n = 1; n <= 6; n++) await log.append(entry(n));
    await log.checkpointWitnessed();
    // Record 3 rewritten by someone holding the producer's key: every later record re-made and re-signed.
    const rows = await log.all();
    let head = { seq: 2, hash: rows[1]!.hash };
    await sql`DELETE FROM audit_records WHERE seq > 2`.execute(t.db);
    for (const r of rows.slice(2)) {
      const e = { ...r, details: r.seq === 3 ? { n: 3, purpose: 'research' } : r.details };
      const again = await signRecord(
        nextRecord(e, head, 'producer', new Date(r.time)),
        signers.producer,
      );
      await t.db
        .insertInto('audit_records')
        .values({
          seq: again.seq,
          time: again.time,
          party: again.party,
          event: again.event,
          subtype: again.subtype,
          action: again.action,
          outcome: again.outcome,
          actor_id: again.actor.id,
          actor: JSON.stringify(again.actor),
          objects: JSON.stringify(again.objects),
          details: JSON.stringify(again.details),
          prev: again.prev,
          hash: again.hash,
          v: 2,
          key_id: again.keyId!,
          signature: again.signature!,
        })
        .execute();
      head = { seq: again.seq, hash: again.hash };
    }
    await sql`UPDATE audit_head SET hash = ${head.hash}`.execute(t.db);
    await sql`DELETE FROM audit_checkpoints WHERE seq > 2`.execute(t.db);
    const status = await log.checkpointWitnessed();
    expect(status).toMatchObject({ state: 'refused', refused: { seq: 6, kind: 'forked' } });
    const report = await log.verify();
    expect(kinds(report)).toEqual(['5:rewritten', '6:forked']);
  });

  it('a database of v1 records is upgraded: its head is the base, the records after it are v2, signed and proven', async () => {
    const t = await setup([entry(1), entry(2), entry(3)]);
    const log = await t.started();
    // At start the v1 head was taken as the witness's base (v1 links cannot be shown by digests).
    let s = await t.statement();
    expect(s.first?.seq).toBe(3);
    for (let n = 4; n <= 9; n++) await log.append(entry(n));
    expect(await log.checkpointWitnessed()).toMatchObject({
      state: 'current',
      witnessed: { seq: 9 },
    });
    s = await t.statement();
    expect(s.latest?.seq).toBe(9);
    const all = await log.all();
    expect(all.map((r) => r.v ?? 1)).toEqual([1, 1, 1, 2, 2, 2, 2, 2, 2]);
    const report = await log.verify();
    expect(report).toMatchObject({
      ok: true,
      records: 9,
      witness: { consulted: true, reached: true },
    });
    // A v2 record turned back into v1 (re-hashed, unsigned) after the switch: named.
    const { v: _v, keyId: _k, signature: _s, hash: _h, ...plain } = all[5]!;
    await sql`UPDATE audit_records SET v = NULL, key_id = NULL, signature = NULL, hash = ${recordHash(plain)} WHERE seq = 6`.execute(
      t.db,
    );
    expect(kinds(await log.verify())).toEqual(expect.arrayContaining(['6:rewritten']));
  });

  it('only the member whose certificate names the party may submit for it, with its own key', async () => {
    const t = await setup();
    const log = await t.started();
    await log.append(entry(1));
    await log.checkpointWitnessed();
    const [c] = await log.checkpoints();
    const s = { checkpoint: c!, from: 0, digests: [] };
    await expect(t.witness.submit(pki.organisations.cloud.cert, s)).rejects.toMatchObject({
      status: 403,
      code: 'wrong-party',
    });
    await expect(
      t.witness.submit(pki.organisations.producer.cert, {
        ...s,
        checkpoint: {
          ...c!,
          signature: c!.signature.replace(/^./, (x) => (x === 'A' ? 'B' : 'A')),
        },
      }),
    ).resolves.toMatchObject({ outcome: 'invalid' });
    await t.authDb
      .updateTable('certificates')
      .set({ admitted: 0 })
      .where('member_id', '=', 'producer')
      .execute();
    await expect(t.witness.submit(pki.organisations.producer.cert, s)).rejects.toBeInstanceOf(
      WitnessError,
    );
  });

  it('answers over HTTP: a submission without a TLS certificate is refused, a statement is signed over the nonce', async () => {
    const t = await setup();
    const app = Fastify();
    await app.register(witnessPlugin, { database: { db: t.authDb }, audit: t.authorityLog });
    const nope = await app.inject({
      method: 'POST',
      url: '/witness/checkpoints',
      payload: {
        checkpoint: {
          seq: 1,
          hash: 'ab'.repeat(32),
          time: '2026-03-01T10:00:00.000Z',
          party: 'producer',
          keyId: 'cd'.repeat(16),
          signature: 'AAAA',
        },
        from: 0,
        digests: [],
      },
    });
    expect(nope.statusCode).toBe(401);
    const bad = await app.inject({ method: 'GET', url: '/witness/producer?nonce=xyz' });
    expect(bad.statusCode).toBe(400);
    const nonce = toHex(randomBytes(16));
    const ok = await app.inject({ method: 'GET', url: `/witness/producer?nonce=${nonce}` });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ party: 'producer', nonce, latest: null, conflicts: [] });
    await app.close();
  });
});
