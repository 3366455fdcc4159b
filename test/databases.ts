/** Opens a test database on SQLite (temporary file) or PostgreSQL (a fresh schema in database test). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Migration } from 'kysely';
import { randomBytes, toHex } from '../src/core/bytes.ts';
import {
  dropSchema,
  openDatabase,
  type Database,
  type Dialect,
} from '../src/services/storage/db.ts';

export const PG_URL =
  process.env.ZTV_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const DIALECTS: readonly Dialect[] = ['sqlite', 'postgres'];

export interface TestDatabase<DB> {
  readonly database: Database<DB>;
  /** What a second replica would open: the same file or schema. */
  readonly options: { url?: string; file?: string; schema?: string };
  cleanup(): Promise<void>;
}

export async function openTestDatabase<DB>(
  dialect: Dialect,
  migrationTable: string,
  migrations: Record<string, Migration>,
): Promise<TestDatabase<DB>> {
  if (dialect === 'postgres') {
    const schema = `t_${toHex(randomBytes(6))}`;
    const options = { url: PG_URL, schema };
    const database = await openDatabase<DB>({ ...options, migrationTable, migrations });
    return {
      database,
      options,
      cleanup: async () => {
        await database.close();
        await dropSchema(PG_URL, schema);
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'ztv-db-'));
  const options = { file: join(dir, 'test.sqlite') };
  const database = await openDatabase<DB>({ ...options, migrationTable, migrations });
  return {
    database,
    options,
    cleanup: async () => {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
