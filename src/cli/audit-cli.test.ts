// The auditors' commands as operators meet them without a federation: --help prints usage, user
// errors are one line on stderr with the documented exit code and never a stack trace or a partial
// output file, and `ztv audit verify` on a database file names a rewritten record exactly.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../test/samples.ts';
import { createDemoPki } from '../core/pki/demo.ts';
import { signingKeyFromPem } from '../core/crypto/keys.ts';
import { writePkiDir } from '../services/common/pki-dir.ts';
import { AuditStore, auditMigration } from '../services/storage/audit-store.ts';
import { openDatabase } from '../services/storage/db.ts';
import { randomBytes } from '../core/bytes.ts';

const BIN = join(REPO_ROOT, 'bin/ztv.js');
let dir: string;
const p = (f: string) => join(dir, f);
const ztv = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    cwd: dir,
    env: { ...process.env, DATABASE_URL: '', ZTV_PASSWORD: '' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const oneLine = (r: { err: string }) => {
  expect(r.err.trim().split('\n')[0]).toMatch(/^ztv [a-z-]+: /);
  expect(r.err).not.toMatch(/\n\s+at /);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-audit-cli-'));
  await writePkiDir(p('pki'), await createDemoPki(), randomBytes(32));
  // A producer chain of 7 records with checkpoints every 3, signed with the producer's key.
  const database = await openDatabase({
    file: p('producer.sqlite'),
    migrationTable: 'producer_migrations',
    migrations: { '0001_audit': auditMigration },
  });
  const signer = await signingKeyFromPem(readFileSync(p('pki/producer.key.pem'), 'utf8'));
  const store = new AuditStore(database as never, 'producer', signer, 3);
  for (let i = 0; i < 7; i++)
    await store.append({
      event: '110112',
      subtype: 'request-logged',
      action: 'R',
      outcome: 0,
      actor: { id: `dr.${i}` },
      objects: [],
      details: { purpose: 'treatment' },
    });
  await database.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ztv trace-leak and ztv audit: usage and user errors', () => {
  it('--help prints usage and exits 0; ztv --help lists both commands', () => {
    for (const cmd of [['trace-leak'], ['audit', 'verify'], ['audit', 'export'], ['audit']]) {
      const r = ztv(...cmd, '--help');
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('usage: ztv');
    }
    const all = ztv('--help');
    expect(all.out).toContain('trace-leak');
    expect(all.out).toMatch(/\n {2}audit /);
  });

  it('missing arguments are usage errors (64) in one line', () => {
    for (const args of [
      ['trace-leak'],
      ['trace-leak', 'x.dcm'],
      ['audit', 'verify'],
      ['audit', 'verify', '--db', p('producer.sqlite')], // no --pki
      ['audit', 'export', '--out', p('o.xml'), '--db', p('producer.sqlite')],
      ['audit', 'frobnicate'],
    ]) {
      const r = ztv(...args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(64);
      oneLine(r);
    }
  });

  it('unreadable inputs fail in one line and leave no output file', () => {
    const missing = ztv('trace-leak', p('nope.dcm'), '--producer', 'http://127.0.0.1:9');
    expect(missing.code).toBe(3);
    oneLine(missing);
    expect(missing.err).toContain('does not exist');
    writeFileSync(p('not-dicom.dcm'), 'hello');
    const notDicom = ztv('trace-leak', p('not-dicom.dcm'), '--producer', 'http://127.0.0.1:9');
    expect(notDicom.code).toBe(3);
    oneLine(notDicom);
    const noDb = ztv('audit', 'verify', '--db', p('none.sqlite'), '--pki', p('pki'));
    expect(noDb.code).toBe(3);
    oneLine(noDb);
    expect(existsSync(p('none.sqlite'))).toBe(false); // opened read-only: never created
    writeFileSync(p('empty.sqlite'), '');
    const ex = ztv(
      'audit',
      'export',
      '--format',
      'csv',
      '--out',
      p('e.csv'),
      '--db',
      p('empty.sqlite'),
    );
    expect(ex.code).toBe(3);
    oneLine(ex);
    expect(existsSync(p('e.csv'))).toBe(false);
  });

  it('audit verify on a database: 2 when intact but not compared with a witness, 1 and the exact record when one was rewritten', () => {
    // Without a witness a chain cut after its last record cannot be told from an intact one: never 0.
    const ok = ztv('audit', 'verify', '--db', p('producer.sqlite'), '--pki', p('pki'));
    expect(ok.code, ok.err).toBe(2);
    expect(ok.out).toBe(
      'producer: 7 records, 2 signed checkpoint(s): chain intact up to record 7; NOT compared with the witness (no --witness URL was given): a truncated, rolled-back or restored chain cannot be ruled out\n',
    );
    const unreachable = ztv(
      'audit',
      'verify',
      '--db',
      p('producer.sqlite'),
      '--pki',
      p('pki'),
      '--witness',
      'http://127.0.0.1:9',
    );
    expect(unreachable.code).toBe(2);
    expect(unreachable.out).toContain(
      'NOT compared with the witness (the witness cannot be reached',
    );
    const db = new SQLite(p('producer.sqlite'));
    db.prepare('UPDATE audit_records SET actor = ? WHERE seq = 5').run('{"id":"dr.mallory"}');
    db.close();
    const bad = ztv('audit', 'verify', '--db', p('producer.sqlite'), '--pki', p('pki'));
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(
      'producer: 7 records, 2 signed checkpoint(s): 1 BREAK(S); NOT compared',
    );
    expect(bad.out).toContain(
      'record 5: hash-mismatch: record 5 was rewritten: its content no longer matches its hash',
    );
    // Deleting a record breaks the sequence and the link; the checkpoint at 6 lost its record.
    const db2 = new SQLite(p('producer.sqlite'));
    db2.prepare('DELETE FROM audit_records WHERE seq = 6').run();
    db2.close();
    const gap = JSON.parse(
      ztv('audit', 'verify', '--db', p('producer.sqlite'), '--pki', p('pki'), '--json').out,
    );
    expect(
      gap[0].local.breaks.map((b: { seq: number; kind: string }) => `${b.seq}:${b.kind}`),
    ).toEqual(['5:hash-mismatch', '6:checkpoint-mismatch', '7:sequence-gap', '7:broken-link']);
    // A checkpoint signed by another key than the producer's certificate is named too.
    const other = ztv(
      'audit',
      'verify',
      '--db',
      p('producer.sqlite'),
      '--pki',
      p('pki'),
      '--party',
      'cloud',
    );
    expect(other.code).toBe(1);
    expect(other.out).toContain('checkpoint-unknown-key');
  });
});
