// Backup and restore of one party's PostgreSQL schema and files, without a federation: the rows and
// the files come back as they were, a password in the database URL never reaches pg_dump's command
// line, and a wrong party or database kind is refused before anything is touched.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes, toHex } from '../../core/bytes.ts';
import { PG_URL } from '../../../test/databases.ts';
import { backupParty, restoreParty, type PartyLocation } from './backup.ts';
import { dropSchema } from './db.ts';

const schema = `t_${toHex(randomBytes(6))}`;
const root = mkdtempSync(join(tmpdir(), 'ztv-backup-unit-'));
afterAll(async () => {
  await dropSchema(PG_URL, schema);
  rmSync(root, { recursive: true, force: true });
});

async function query<T>(text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return (await c.query(text)).rows as T[];
  } finally {
    await c.end();
  }
}

/** The URL with a password: trust auth ignores it, so only where it travels is tested. */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

describe('backup of a party on PostgreSQL', () => {
  it('restores its schema and files after both are destroyed; the password stays off the command line', async () => {
    await query(`CREATE SCHEMA "${schema}"`);
    await query(`CREATE TABLE "${schema}".images (id text PRIMARY KEY, bytes integer NOT NULL)`);
    await query(`INSERT INTO "${schema}".images VALUES ('a', 1), ('b', 22), ('c', 333)`);
    const loc: PartyLocation = {
      party: 'cloud',
      dir: join(root, 'cloud'),
      pkiDir: join(root, 'pki'),
      postgres: { url: withPassword(PG_URL, 'not-on-the-command-line'), schema },
    };
    mkdirSync(join(loc.dir, 'blobs'), { recursive: true });
    mkdirSync(loc.pkiDir, { recursive: true });
    writeFileSync(join(loc.dir, 'blobs', 'x.bin'), 'blob-bytes');
    writeFileSync(join(loc.pkiDir, 'cloud.key.pem'), 'key');

    // pg_dump and pg_restore see their arguments through /proc while they run: a spy on execFile
    // would test our call, this tests what the operating system shows.
    const seen: string[] = [];
    const watch = setInterval(() => {
      for (const pid of existsSync('/proc') ? readdirPids() : []) {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (/pg_dump|pg_restore/.test(cmd)) seen.push(cmd.replaceAll('\0', ' '));
        } catch {
          /* gone */
        }
      }
    }, 2);
    try {
      const { bytes, manifest } = await backupParty(loc, 'a long operator passphrase');
      expect(manifest).toMatchObject({ party: 'cloud', database: 'postgres', files: 1 });

      await dropSchema(PG_URL, schema);
      rmSync(loc.dir, { recursive: true, force: true });
      rmSync(join(loc.pkiDir, 'cloud.key.pem'));
      await expect(query(`SELECT * FROM "${schema}".images`)).rejects.toThrow(/does not exist/);

      await expect(
        restoreParty({ ...loc, party: 'producer' }, bytes, 'a long operator passphrase'),
      ).rejects.toThrow(/backup is of the cloud, not the producer/);
      await expect(
        restoreParty({ ...loc, postgres: undefined }, bytes, 'a long operator passphrase'),
      ).rejects.toThrow(/holds a postgres database/);

      await restoreParty(loc, bytes, 'a long operator passphrase');
    } finally {
      clearInterval(watch);
    }
    expect(
      await query<{ id: string; bytes: number }>(`SELECT * FROM "${schema}".images ORDER BY id`),
    ).toEqual([
      { id: 'a', bytes: 1 },
      { id: 'b', bytes: 22 },
      { id: 'c', bytes: 333 },
    ]);
    expect(readFileSync(join(loc.dir, 'blobs', 'x.bin'), 'utf8')).toBe('blob-bytes');
    expect(readFileSync(join(loc.pkiDir, 'cloud.key.pem'), 'utf8')).toBe('key');
    for (const cmd of seen) expect(cmd).not.toContain('not-on-the-command-line');
  });
});

function readdirPids(): string[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n));
}
