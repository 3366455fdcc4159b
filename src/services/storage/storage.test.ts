// Storage on both dialects (SQLite file, PostgreSQL schema): atomic blobs, the hash-chained audit log
// with checkpoints, the exact break a rewritten or removed record causes, replicas appending to one
// PostgreSQL chain without forking it, and the guard against secrets in audit details.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, openTestDatabase, type TestDatabase } from '../../../test/databases.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import type { AuditEntry } from '../../core/audit/record.ts';
import { AuditStore, auditMigration, type AuditTables } from './audit-store.ts';
import { FileBlobStore } from './blobs.ts';
import { openDatabase } from './db.ts';

const entry = (n: number, actor = 'dr.alice'): AuditEntry => ({
  event: '110103',
  subtype: 'redemption',
  action: 'R',
  outcome: 0,
  actor: { id: actor, role: 'radiologist' },
  objects: [
    { type: 'image', id: `img-${n}` },
    { type: 'ticket', id: `t-${n % 3}` },
  ],
  details: { n, purpose: 'treatment' },
});

describe('blobs', () => {
  let dir: string;
  let store: FileBlobStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ztv-blobs-'));
    store = new FileBlobStore(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('stores, lists, reads and deletes; refuses keys that could escape the directory', async () => {
    await store.put('abc123', Uint8Array.of(1, 2, 3));
    await store.put('ffee', new Uint8Array(100_000).fill(7));
    expect(await store.list()).toEqual(['abc123', 'ffee']);
    expect(await store.get('abc123')).toEqual(Uint8Array.of(1, 2, 3));
    expect(await store.has('nope')).toBe(false);
    await expect(store.get('nope')).rejects.toThrow(/no blob nope/);
    await expect(store.put('../etc', Uint8Array.of(1))).rejects.toThrow(/invalid blob key/);
    await expect(store.put('a/b', Uint8Array.of(1))).rejects.toThrow(/invalid blob key/);
    await store.delete('ffee');
    expect(await store.list()).toEqual(['abc123']);
  });

  it('sweeps interrupted writes and blobs no row refers to', async () => {
    writeFileSync(join(dir, 'ab', '.abc999.deadbeef.tmp'), 'half a blob');
    await store.put('orphan1', Uint8Array.of(9));
    const removed = await store.sweep(async (k) => k === 'abc123');
    expect(removed.sort()).toEqual(['.abc999.deadbeef.tmp', 'orphan1']);
    expect(await store.list()).toEqual(['abc123']);
    expect(readdirSync(join(dir, 'ab')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe.each(DIALECTS)('audit chain on %s', (dialect) => {
  let t: TestDatabase<AuditTables>;
  let signer: SigningKey;
  let log: AuditStore;
  beforeAll(async () => {
    t = await openTestDatabase<AuditTables>(dialect, 'test_migrations', {
      '0001_audit': auditMigration,
    });
    signer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
    log = new AuditStore(t.database, 'cloud', signer, 10);
  });
  afterAll(() => t?.cleanup());

  it('appends a chain with periodic signed checkpoints that verifies', async () => {
    for (let n = 1; n <= 25; n++) await log.append(entry(n, n % 2 ? 'dr.alice' : 'dr.bob'));
    const report = await log.verify();
    expect(report).toMatchObject({ ok: true, records: 25, checkpoints: 2, breaks: [] });
    expect((await log.query({ actor: 'dr.bob' })).length).toBe(12);
    expect((await log.query({ object: { type: 'ticket', id: 't-1' } })).map((r) => r.seq)).toEqual([
      1, 4, 7, 10, 13, 16, 19, 22, 25,
    ]);
    const all = await log.all();
    expect(all[0]!.prev).toBe('0'.repeat(64));
    expect(all[5]!.prev).toBe(all[4]!.hash);
  });

  it('names the exact record rewritten in the database', async () => {
    await sql`UPDATE audit_records SET details = ${JSON.stringify({ n: 7, purpose: 'curiosity' })} WHERE seq = 7`.execute(
      t.database.db,
    );
    const report = await log.verify();
    expect(report.ok).toBe(false);
    expect(report.breaks.map((b) => [b.seq, b.kind])).toEqual([[7, 'hash-mismatch']]);
    expect(report.breaks[0]!.detail).toMatch(/record 7 was rewritten/);
  });

  it('names a removed record and a forged checkpoint', async () => {
    await sql`DELETE FROM audit_records WHERE seq = 12`.execute(t.database.db);
    await sql`UPDATE audit_checkpoints SET hash = ${'f'.repeat(64)} WHERE seq = 20`.execute(
      t.database.db,
    );
    const kinds = (await log.verify()).breaks.map((b) => `${b.seq}:${b.kind}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        '7:hash-mismatch',
        '13:sequence-gap',
        '13:broken-link',
        '20:checkpoint-signature',
        '20:checkpoint-mismatch',
      ]),
    );
  });

  it('refuses details that carry secrets', async () => {
    await expect(log.append({ ...entry(99), details: { imageKey: 'abc' } })).rejects.toThrow(
      /must not be logged/,
    );
    await expect(
      log.append({ ...entry(99), details: { note: '-----BEGIN PRIVATE KEY-----' } }),
    ).rejects.toThrow(/key material/);
  });
});

describe('services in schemas of one PostgreSQL database', () => {
  it("migrate each in its own schema, whatever another schema's migration tables say", async () => {
    // Another federation (or a test run that stopped before its cleanup) left the same tables in
    // its schema: Kysely used to find that schema's lock table, skip creating its own, and fail.
    const left = await openTestDatabase<AuditTables>('postgres', 'test_migrations', {
      '0001_audit': auditMigration,
    });
    try {
      const mine = await openTestDatabase<AuditTables>('postgres', 'test_migrations', {
        '0001_audit': auditMigration,
      });
      try {
        const signer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
        const store = new AuditStore(mine.database, 'cloud', signer, 1000);
        await store.append(entry(1));
        expect(await store.verify()).toMatchObject({ ok: true, records: 1 });
        const tables = await sql<{ schema: string }>`
          select table_schema as schema from information_schema.tables
          where table_name = 'test_migrations_lock'`.execute(mine.database.db);
        const schemas = tables.rows.map((r) => r.schema);
        expect(schemas).toContain((mine.options as { schema: string }).schema);
        expect(schemas).toContain((left.options as { schema: string }).schema);
      } finally {
        await mine.cleanup();
      }
    } finally {
      await left.cleanup();
    }
  });
});

describe('replicas sharing PostgreSQL', () => {
  it('two services appending at once keep one unbroken chain', async () => {
    const t = await openTestDatabase<AuditTables>('postgres', 'test_migrations', {
      '0001_audit': auditMigration,
    });
    try {
      const other = await openDatabase<AuditTables>({
        ...t.options,
        migrationTable: 'test_migrations',
        migrations: { '0001_audit': auditMigration },
      });
      const signer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
      const a = new AuditStore(t.database, 'cloud', signer, 1000);
      const b = new AuditStore(other, 'cloud', signer, 1000);
      await Promise.all([
        ...Array.from({ length: 30 }, (_, i) => a.append(entry(i, 'replica-a'))),
        ...Array.from({ length: 30 }, (_, i) => b.append(entry(i, 'replica-b'))),
      ]);
      const report = await a.verify();
      expect(report).toMatchObject({ ok: true, records: 60 });
      await other.close();
    } finally {
      await t.cleanup();
    }
  });
});
