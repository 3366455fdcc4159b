// Auditors against a real federation (four processes, free ports, a temporary data directory, SQLite
// and then PostgreSQL in a database of its own): a clinician consults and retrieves real CT slices; the
// test keeps one served instance as the "leaked" file; `ztv trace-leak` names that clinician and
// ticket without any image key; an altered trace is reported as forged and a cloud-signed trace no log
// knows as unknown. Each party's trail is verified and merged for auditors only, every access logged;
// XML exports validate against the shipped PS3.15 schema; break-glass review obeys SOD-DYNAMIC and
// discharges the obligation once; a record rewritten in the producer's database is named — seq and
// failure — by the service's trail verification and by `ztv audit verify`.
//
// Then the attacks of issue 16 on the chains themselves, each verified against the witness at the
// authority (the statement fetched through the consumer hospital, never from the party): on a copy of
// the producer's audit tables, the last record deleted, a record rewritten and re-hashed with
// `recordHash` (no key), a checkpointed record deleted with its checkpoint; on the running parties, the
// producer's last records deleted and its head set back while it appends on, the consumer rolled back
// to an earlier record with its later checkpoints removed, and the cloud's database restored from an
// older copy (an SQLite backup, a pg_dump) — each named: truncated, rolled-back, rewritten.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditorClient, enrollDevice } from '../src/core/audit/client.ts';
import { parseCsv, toCsv } from '../src/core/audit/csv.ts';
import { toDicomAudit } from '../src/core/audit/dicom.ts';
import { recordHash, type AuditRecord } from '../src/core/audit/record.ts';
import { verifiedComplete } from '../src/core/audit/verify.ts';
import { readStoredChain } from '../src/services/storage/audit-reader.ts';
import { randomBytes, toHex } from '../src/core/bytes.ts';
import { FederationClient, fetchTrust, type DeviceKeys } from '../src/core/client/federation.ts';
import { signingKeyFromPem } from '../src/core/crypto/keys.ts';
import type { PkiView } from '../src/core/pki/resolver.ts';
import { encodeTraceSlot } from '../src/core/protect/container.ts';
import { readProtected } from '../src/core/protect/image.ts';
import { traceProtected, writeTraceSlot } from '../src/core/protect/trace.ts';
import { RemoteError } from '../src/core/session/protocol.ts';
import { federationConfig } from '../src/services/common/config.ts';
import { outsource } from '../src/cli/commands/outsource.ts';
import { freePorts, startFederation, type Federation } from '../src/services/launcher.ts';
import { DIALECTS, PG_URL } from './databases.ts';
import { REPO_ROOT, sampleFiles } from './samples.ts';
import { validateAuditMessages } from './audit-schema.ts';

const BIN = join(REPO_ROOT, 'bin/ztv.js');
const PATIENT = 'LIDC-IDRI-0314';
const SLICES = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(0, 3);

const validateAll = async (xml: string) => {
  const lines = xml.trimEnd().split('\n');
  const r = await validateAuditMessages(lines);
  expect(r.errors, r.rawOutput).toEqual([]);
  return lines.length;
};

interface Person {
  readonly device: DeviceKeys;
  readonly client: FederationClient;
  readonly token: string;
}

describe.each(DIALECTS)('auditors on %s', (dialect) => {
  let dir: string;
  let fed: Federation;
  let pgDatabase: string | undefined;
  let databaseUrl: string | undefined;
  let trust: PkiView;
  let bob: Person;
  let auditor: AuditorClient;
  let bobAsAuditor: AuditorClient;
  let consulted: Awaited<ReturnType<FederationClient['consult']>>;
  let leaked: Uint8Array;
  const file = (name: string) => join(dir, name);

  const ztv = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      encoding: 'utf8',
      cwd: dir,
      env: {
        ...process.env,
        ZTV_PASSWORD: '',
        ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATABASE_URL: '' }),
      },
      timeout: 90_000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const witnessArgs = () => ['--witness', fed.urls.consumer];
  /** The lines `ztv audit verify` printed about one party. */
  const block = (out: string, party: string): string =>
    (new RegExp(`^${party}: .*(\\n {2}.*)*`, 'm').exec(out) ?? [''])[0];

  /** Runs statements on a party's live database, as someone with write access to it would. */
  const onDatabase = async (
    target: { sqlite: string } | { schema: string },
    statements: readonly (readonly [string, readonly unknown[]])[],
  ) => {
    if ('sqlite' in target) {
      const db = new SQLite(target.sqlite);
      db.pragma('busy_timeout = 5000');
      for (const [q, params] of statements) db.prepare(q).run(...params);
      db.close();
      return;
    }
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    await c.query(`SET search_path TO "${target.schema}"`);
    for (const [q, params] of statements) {
      let n = 0;
      await c.query(
        q.replace(/\?/g, () => `$${++n}`),
        params as unknown[],
      );
    }
    await c.end();
  };
  const live = (party: string) =>
    dialect === 'sqlite'
      ? { sqlite: join(dir, party, `${party}.sqlite`) }
      : { schema: `ztv_${party}` };

  /** A copy of a party's audit tables to attack, and the `ztv audit verify` arguments that read it. */
  const copyOf = async (party: string, name: string) => {
    if (dialect === 'sqlite') {
      const src = new SQLite(join(dir, party, `${party}.sqlite`), { readonly: true });
      await src.backup(file(`${name}.sqlite`));
      src.close();
      return {
        target: { sqlite: file(`${name}.sqlite`) },
        args: ['--db', file(`${name}.sqlite`), '--party', party, '--pki', join(dir, 'pki')],
      };
    }
    const schema = `copy_${name.replace(/-/g, '_')}`;
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    await c.query(`CREATE SCHEMA ${schema}`);
    for (const t of ['audit_records', 'audit_checkpoints', 'audit_head', 'audit_objects'])
      await c.query(`CREATE TABLE ${schema}.${t} AS TABLE ztv_${party}.${t}`);
    await c.end();
    return {
      target: { schema },
      args: [
        '--database-url',
        databaseUrl!,
        '--schema',
        schema,
        '--party',
        party,
        '--pki',
        join(dir, 'pki'),
      ],
    };
  };
  const auditorArgs = () => [
    '--consumer',
    fed.urls.consumer,
    '--producer',
    fed.urls.producer,
    '--user',
    'auditor.dave',
    '--password-file',
    file('password'),
    '--root',
    join(dir, 'pki', 'ca.pem'),
  ];

  const person = async (user: string): Promise<Person> => {
    const { token } = await FederationClient.login(fed.urls.consumer, user, 'ztv-demo');
    const device = await enrollDevice(fed.urls.consumer, token, user);
    return { device, token, client: new FederationClient(fed.urls, device, () => trust) };
  };
  const auditorClient = (device: DeviceKeys) =>
    new AuditorClient(
      { producer: fed.urls.producer, cloud: fed.urls.cloud, consumer: fed.urls.consumer },
      device,
      () => trust,
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ztv-audit-'));
    writeFileSync(file('password'), 'ztv-demo\n');
    if (dialect === 'postgres') {
      // A database of its own: the services' schema names cannot collide with any other run.
      pgDatabase = `ztv_audit_${toHex(randomBytes(6))}`;
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${pgDatabase}`);
      await admin.end();
      const u = new URL(PG_URL);
      u.pathname = `/${pgDatabase}`;
      databaseUrl = u.toString();
    }
    const [a, p, c, ci, co] = await freePorts(5);
    const config = federationConfig({
      ZTV_DATA: dir,
      ZTV_PORT_AUTHORITY: String(a),
      ZTV_PORT_PRODUCER: String(p),
      ZTV_PORT_CLOUD: String(c),
      ZTV_PORT_CLOUD_INTERNAL: String(ci),
      ZTV_PORT_CONSUMER: String(co),
      // The DICOM node on a port of the system's choosing: federations run side by side.
      ZTV_PORT_DIMSE: '0',
      ZTV_LOG_LEVEL: 'warn',
      ZTV_VIEWER_DIR: join(dir, 'no-viewer'),
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    });
    fed = await startFederation({
      config,
      demoCare: `dr.bob|attending|${PATIENT}`,
      env: databaseUrl ? {} : { DATABASE_URL: '' },
    });
    const stored = await outsource(fed.urls.producer, fed.secrets.stowToken, SLICES);
    expect(stored.failed).toEqual([]);
    trust = await fetchTrust(fed.urls.consumer, readFileSync(join(dir, 'pki', 'ca.pem'), 'utf8'));

    // The clinician consults and retrieves; one served instance becomes the "leaked" file.
    bob = await person('dr.bob');
    const statements = await bob.client.roleAssignments(bob.token);
    consulted = await bob.client.consult({
      patient: PATIENT,
      purpose: 'TREAT',
      roleAssignments: statements,
    });
    const red = await bob.client.redeem(consulted.ticket);
    const served: Uint8Array[] = [];
    for await (const r of bob.client.retrieve(red.redemption)) served.push(r.bytes);
    expect(served).toHaveLength(SLICES.length);
    leaked = served[1]!;
    writeFileSync(file('leaked.dcm'), leaked);

    const { token } = await FederationClient.login(fed.urls.consumer, 'auditor.dave', 'ztv-demo');
    auditor = auditorClient(await enrollDevice(fed.urls.consumer, token, 'auditor'));
    bobAsAuditor = auditorClient(bob.device);
  });

  afterAll(async () => {
    await auditor?.close().catch(() => undefined);
    await bobAsAuditor?.close().catch(() => undefined);
    await bob?.client.close().catch(() => undefined);
    await fed?.stop();
    if (pgDatabase) {
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pgDatabase} WITH (FORCE)`);
      await admin.end();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('ztv trace-leak names the clinician and the ticket of a leaked instance, without any key', async () => {
    const r = ztv('trace-leak', file('leaked.dcm'), ...auditorArgs());
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`resolved by the producer's log`);
    expect(r.out).toMatch(/requester\s+dr\.bob/);
    expect(r.out).toContain(`ticket      ${consulted.ticket.tid}`);
    expect(r.out).toMatch(/purpose\s+TREAT/);
    expect(r.out).toMatch(/rules\s+ATTENDING/);
    expect(r.out).toMatch(/break-glass no/);
    expect(r.out).not.toContain(PATIENT);
    const j = ztv('trace-leak', file('leaked.dcm'), ...auditorArgs(), '--json');
    expect(j.code, j.err).toBe(0);
    const report = JSON.parse(j.out);
    expect(report.status).toBe('resolved');
    expect(report.examination.traceId).toBe(consulted.trace);
    expect(report.resolution.ticket).toMatchObject({
      tid: consulted.ticket.tid,
      requester: 'dr.bob',
      device: await bob.client.deviceId(),
      purpose: 'TREAT',
      rules: ['ATTENDING'],
      breakGlass: false,
    });
    expect(report.resolution.ticket.hospital).toBeTruthy();
  });

  it('an altered trace is reported as forged; a cloud-signed trace no log knows, as unknown', async () => {
    const slot = readProtected(leaked).container!.trace!;
    const other = slot.traceId.slice();
    other[0]! ^= 0x01;
    writeFileSync(
      file('forged.dcm'),
      writeTraceSlot(leaked, encodeTraceSlot({ ...slot, traceId: other })),
    );
    const f = ztv('trace-leak', file('forged.dcm'), ...auditorArgs());
    expect(f.code, f.err).toBe(1);
    expect(f.out).toContain('FORGED');
    expect(f.out).toContain(
      "the inclusion path does not lead from the trace record to the release's signed root",
    );
    expect(f.out).not.toContain('dr.bob');

    const cloud = await signingKeyFromPem(readFileSync(join(dir, 'pki', 'cloud.key.pem'), 'utf8'));
    writeFileSync(
      file('unknown.dcm'),
      await traceProtected(leaked, { signer: cloud, traceId: randomBytes(32) }),
    );
    const u = ztv('trace-leak', file('unknown.dcm'), ...auditorArgs());
    expect(u.code, u.err).toBe(4);
    expect(u.out).toContain('UNKNOWN');

    // A file that is not a protected image: one line, no stack trace, before any sign-in.
    const n = ztv('trace-leak', SLICES[0]!, ...auditorArgs());
    expect(n.code).not.toBe(0);
    expect(n.err.trim().split('\n')).toHaveLength(1);
    expect(n.err).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('every trace resolution was itself logged by the producer, as Audit Log Used', async () => {
    const t = await auditor.trail('producer', { event: '110101', clinician: 'auditor.dave' });
    const resolved = t.records.filter((r) => r.subtype === 'trace-resolved');
    expect(resolved.length).toBeGreaterThanOrEqual(3);
    expect(resolved.some((r) => r.details.known === false)).toBe(true);
    expect(resolved.find((r) => r.details.known === true)?.objects).toEqual([
      { type: 'ticket', id: consulted.ticket.tid },
    ]);
  });

  it('auditors get each trail verified and the merged trail of a ticket across the three parties', async () => {
    const merged = await auditor.mergedTrail({ patientId: PATIENT });
    expect(merged.ok).toBe(true);
    expect(merged.chains.map((c) => c.party).sort()).toEqual(['cloud', 'consumer', 'producer']);
    const kinds = merged.entries.map((e) => `${e.party}:${e.record.subtype}`);
    for (const k of [
      'producer:request-logged',
      'producer:ticket-issued',
      'cloud:policy-decision',
      'cloud:trace-inserted',
      'cloud:retrieve',
      'consumer:login',
      'consumer:device-enrolled',
    ])
      expect(kinds).toContain(k);
    const times = merged.entries.map((e) => e.record.time);
    expect([...times].sort()).toEqual(times);
    const inserted = merged.entries.find((e) => e.record.subtype === 'trace-inserted')!.record;
    expect(inserted.details.traces).toEqual([consulted.trace]);
    for (const t of merged.trails) expect(t.checkpoints.length).toBeGreaterThan(0);

    // By clinician: what dr.bob did at each party.
    const byBob = await auditor.mergedTrail({ clinician: 'dr.bob' });
    const bobKinds = new Set(byBob.entries.map((e) => `${e.party}:${e.record.subtype}`));
    for (const k of ['producer:ticket-issued', 'cloud:retrieve', 'consumer:login'])
      expect(bobKinds).toContain(k);
    expect(byBob.entries.every((e) => e.record.actor.id === 'dr.bob')).toBe(true);

    // Each whole chain verifies again here, with the party's certificate key.
    for (const p of ['producer', 'cloud', 'consumer'] as const) {
      const v = await auditor.verifyChain(p);
      expect(v.local.ok, JSON.stringify(v.local.breaks)).toBe(true);
      // …and it reaches the latest checkpoint the witness saw, fetched from the witness.
      expect(verifiedComplete(v.local), JSON.stringify(v.local.witness)).toBe(true);
      // (the bar is what it had seen before this read: the read's own checkpoint came after).
      expect(v.local.witness).toMatchObject({ consulted: true, reached: true });
      expect((v.local.witness as { latest?: { seq: number } }).latest?.seq).toBeGreaterThan(0);
      expect(v.local.checkpoints).toBeGreaterThan(0);
      expect(v.local.records).toBe(v.trail.records.length);
    }

    // The merged trail as DICOM audit messages (valid) and CSV: pseudonyms only.
    const records = merged.entries.map((e) => e.record);
    const xml = toDicomAudit(records);
    expect(await validateAll(xml)).toBe(records.length);
    expect(xml).toContain('<EventID csd-code="110103"');
    expect(xml).toContain('<EventID csd-code="110114"');
    const csv = toCsv(records);
    expect(parseCsv(csv)).toHaveLength(records.length + 1);
    for (const text of [xml, csv]) {
      expect(text).not.toContain(PATIENT);
      expect(text).not.toContain('1.3.6.1.4.1.14519.5.2.1'); // the LIDC study UID root
    }
    expect(xml).toContain(await auditor.pseudonym(PATIENT));
  });

  it('a clinician is refused the audit trail, and the refusal is a logged security alert', async () => {
    await expect(bobAsAuditor.trail('cloud', {})).rejects.toMatchObject({ status: 403 });
    await expect(bobAsAuditor.resolveTrace(consulted.trace)).rejects.toBeInstanceOf(RemoteError);
    const cloud = await auditor.trail('cloud', { subtype: 'audit-access-denied' });
    expect(cloud.records.map((r) => r.actor.id)).toContain('dr.bob');
    const producer = await auditor.trail('producer', { subtype: 'audit-access-denied' });
    expect(producer.records[0]).toMatchObject({ event: '110113', outcome: 4 });
  });

  it('break-glass: pending for review, the requester cannot review it (SOD-DYNAMIC), an auditor does once', async () => {
    const bg = await bob.client.consult({
      patient: PATIENT,
      purpose: 'ETREAT',
      emergencyJustification: 'unconscious patient in the emergency room, prior CT needed now',
    });
    expect(bg.decision.rules).toEqual(['BREAK-GLASS']);
    const { pending } = await auditor.pendingBreakGlass();
    const mine = pending.find((p) => p.tid === bg.ticket.tid)!;
    expect(mine).toMatchObject({ requester: 'dr.bob', rules: ['BREAK-GLASS'] });
    expect(mine.justification).toContain('unconscious');
    expect(pending.map((p) => p.tid)).not.toContain(consulted.ticket.tid);

    const own = bobAsAuditor.review(bg.ticket.tid, 'justified');
    await expect(own).rejects.toMatchObject({ status: 403 });
    await expect(own).rejects.toThrow(/SOD-DYNAMIC/);

    const done = await auditor.review(bg.ticket.tid, 'justified');
    expect(done).toMatchObject({ review: 'justified', reviewer: 'auditor.dave' });
    await expect(auditor.review(bg.ticket.tid, 'unjustified')).rejects.toMatchObject({
      status: 409,
    });
    expect((await auditor.pendingBreakGlass()).pending.map((p) => p.tid)).not.toContain(
      bg.ticket.tid,
    );

    const trail = await auditor.trail('producer', { tickets: [bg.ticket.tid] });
    const subtypes = trail.records.map((r) => r.subtype);
    expect(subtypes).toContain('ticket-issued-break-glass');
    const reviewed = trail.records.filter((r) => r.subtype === 'break-glass-reviewed');
    expect(reviewed).toHaveLength(1);
    expect(reviewed[0]!.details).toMatchObject({
      outcome: 'justified',
      requester: 'dr.bob',
      rules: ['REVIEW'],
    });
    // The justification is logged whole, with the decision that let the emergency access through.
    const decisions = await auditor.trail('producer', {
      subtype: 'policy-decision',
      clinician: 'dr.bob',
    });
    expect(
      decisions.records.some(
        (r) =>
          (r.details.decision as { request?: { context?: { justification?: string } } })?.request
            ?.context?.justification ===
          'unconscious patient in the emergency room, prior CT needed now',
      ),
    ).toBe(true);
    const denied = trail.records.filter((r) => r.subtype === 'audit-access-denied');
    expect(denied[0]?.details.rules).toContain('SOD-DYNAMIC');

    const r = await auditor.resolveTrace(bg.trace);
    expect(r.ticket).toMatchObject({
      breakGlass: true,
      review: 'justified',
      reviewer: 'auditor.dave',
      rules: ['BREAK-GLASS'],
    });
  });

  it('ztv audit export writes the services trail as valid DICOM audit messages, and a database as CSV', async () => {
    const x = ztv(
      'audit',
      'export',
      '--format',
      'xml',
      '--out',
      file('trail.xml'),
      ...auditorArgs(),
      '--cloud',
      fed.urls.cloud,
      '--patient',
      PATIENT,
    );
    expect(x.code, x.err).toBe(0);
    const xml = readFileSync(file('trail.xml'), 'utf8');
    expect(await validateAll(xml)).toBeGreaterThan(5);
    expect(xml).not.toContain(PATIENT);
    const c = ztv(
      'audit',
      'export',
      '--format',
      'csv',
      '--out',
      file('cloud.csv'),
      '--data',
      dir,
      '--party',
      'cloud',
    );
    expect(c.code, c.err).toBe(0);
    const rows = parseCsv(readFileSync(file('cloud.csv'), 'utf8'));
    expect(rows[1]![0]).toBe('cloud');
    expect(rows.map((r) => r[5])).toContain('trace-inserted');
    const bad = ztv(
      'audit',
      'export',
      '--format',
      'pdf',
      '--out',
      file('x.pdf'),
      '--data',
      dir,
      '--party',
      'cloud',
    );
    expect(bad.code).toBe(64);
  });

  it("attacks on a copy of the producer's chain are named against the witness: truncated, rewritten", async () => {
    // Everything the producer holds is witnessed by this read (its checkpoint goes to the witness first).
    const { trail, local } = await auditor.verifyChain('producer');
    expect(verifiedComplete(local)).toBe(true);
    const head = trail.records.at(-1)!.seq;
    const verify = async (
      name: string,
      attack: (t: { sqlite: string } | { schema: string }) => Promise<void>,
    ) => {
      const copy = await copyOf('producer', name);
      await attack(copy.target);
      const r = ztv('audit', 'verify', ...copy.args, ...witnessArgs());
      return { ...r, text: r.out + r.err };
    };

    // An untouched copy verifies complete: intact up to its head, which the witness saw.
    const intact = await verify('intact', async () => undefined);
    expect(intact.code, intact.text).toBe(0);
    expect(intact.out).toContain(
      `chain intact up to record ${head}; reaches the witnessed record ${head}`,
    );

    // The last record deleted (its checkpoint left): the witness saw it.
    const last = await verify('last', (t) =>
      onDatabase(t, [['DELETE FROM audit_records WHERE seq = ?', [head]]]),
    );
    expect(last.code, last.text).toBe(1);
    expect(last.out).toContain(
      `record ${head}: truncated: the witness saw the chain reach record ${head}`,
    );

    // A checkpointed record deleted together with its checkpoint: still missing for the witness.
    const both = await verify('both', (t) =>
      onDatabase(t, [
        ['DELETE FROM audit_records WHERE seq = ?', [head]],
        ['DELETE FROM audit_checkpoints WHERE seq = ?', [head]],
      ]),
    );
    expect(both.code, both.text).toBe(1);
    expect(both.out).toContain(`record ${head}: truncated`);
    expect(both.out).not.toContain('checkpoint-mismatch');

    // A record rewritten and its hash recomputed with recordHash — and every later link, and the later
    // checkpoints removed, so that the chain is consistent again: no key signs the new hashes.
    const target = head - 3;
    const rewritten = await verify('rewritten', async (t) => {
      const chain = await readStoredChain(
        'sqlite' in t ? { file: t.sqlite } : { url: databaseUrl!, schema: t.schema },
        'producer',
      );
      let prev = chain.records[target - 2]!.hash;
      const rows: [string, readonly unknown[]][] = [];
      for (const r of chain.records.slice(target - 1)) {
        const { hash: _h, keyId: _k, signature: _s, ...rest } = r;
        const changed: Omit<AuditRecord, 'hash'> = {
          ...rest,
          prev,
          details: r.seq === target ? { ...r.details, tampered: true } : r.details,
        };
        prev = recordHash(changed);
        rows.push([
          'UPDATE audit_records SET details = ?, prev = ?, hash = ? WHERE seq = ?',
          [JSON.stringify(changed.details), changed.prev, prev, r.seq],
        ]);
      }
      rows.push(['DELETE FROM audit_checkpoints WHERE seq >= ?', [target]]);
      rows.push(['UPDATE audit_head SET hash = ? WHERE id = 1', [prev]]);
      await onDatabase(t, rows);
    });
    expect(rewritten.code, rewritten.text).toBe(1);
    expect(rewritten.out).toContain(
      `record ${target}: rewritten: record ${target}'s signature does not verify: it was rewritten without the producer's key`,
    );
    // …and the first witnessed position from it on no longer holds what the witness saw.
    const differs = /record (\d+): rewritten: record \d+ is not the one the witness saw/.exec(
      rewritten.out,
    );
    expect(Number(differs?.[1])).toBeGreaterThanOrEqual(target);
    expect(rewritten.out).not.toMatch(/hash-mismatch|broken-link/);
  });

  it('a record rewritten in the producer database: the trail and ztv audit verify name its seq and the failure', async () => {
    const before = ztv('audit', 'verify', '--data', dir, '--party', 'producer', ...witnessArgs());
    expect(before.code, before.out + before.err).toBe(0);
    expect(before.out).toContain('producer:');
    expect(before.out).toContain('chain intact');

    const target = (
      await auditor.trail('producer', { subtype: 'request-logged', tickets: [] })
    ).records.find((r) => r.details.purpose === 'TREAT')!;
    const details = JSON.stringify({ ...target.details, purpose: 'HRESCH' });
    if (dialect === 'sqlite') {
      const db = new SQLite(join(dir, 'producer', 'producer.sqlite'));
      db.pragma('busy_timeout = 5000');
      db.prepare('UPDATE audit_records SET details = ? WHERE seq = ?').run(details, target.seq);
      db.close();
    } else {
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      await c.query('UPDATE ztv_producer.audit_records SET details = $1 WHERE seq = $2', [
        details,
        target.seq,
      ]);
      await c.end();
    }

    const trail = await auditor.trail('producer', { clinician: 'dr.bob' });
    expect(trail.verification.ok).toBe(false);
    expect(trail.verification.breaks).toEqual([
      {
        seq: target.seq,
        kind: 'hash-mismatch',
        detail: `record ${target.seq} was rewritten: its content no longer matches its hash`,
      },
    ]);

    const db = ztv('audit', 'verify', '--data', dir, '--party', 'producer', ...witnessArgs());
    expect(db.code).toBe(1);
    expect(db.out).toContain(
      `record ${target.seq}: hash-mismatch: record ${target.seq} was rewritten`,
    );
    const json = JSON.parse(
      ztv('audit', 'verify', '--data', dir, '--party', 'producer', '--json').out,
    );
    expect(json[0].local.breaks.map((b: { seq: number; kind: string }) => [b.seq, b.kind])).toEqual(
      [[target.seq, 'hash-mismatch']],
    );
    expect(ztv('audit', 'verify', '--data', dir, '--party', 'cloud', ...witnessArgs()).code).toBe(
      0,
    );

    const services = ztv('audit', 'verify', ...auditorArgs(), '--cloud', fed.urls.cloud);
    expect(services.code).toBe(1);
    expect(services.out).toMatch(/^producer: .*1 BREAK/m);
    expect(services.out).toContain(`record ${target.seq}: hash-mismatch`);
    expect(services.out).toMatch(/^cloud: .*chain intact/m);
    expect(services.out).toMatch(/^consumer: .*chain intact/m);
  });

  it("the producer's last records deleted and its head set back while it appends on: rolled back", async () => {
    const { trail } = await auditor.verifyChain('producer');
    const head = trail.records.at(-1)!.seq;
    const cut = head - 6;
    await onDatabase(live('producer'), [
      ['DELETE FROM audit_records WHERE seq > ?', [cut]],
      ['DELETE FROM audit_objects WHERE seq > ?', [cut]],
      ['DELETE FROM audit_checkpoints WHERE seq > ?', [cut]],
      ['UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1', [cut, trail.records[cut - 1]!.hash]],
    ]);
    // The running producer appends on seamlessly (this read's own record takes a freed position) and
    // signs its new head, lower than the witness's: the witness keeps it as the producer's own evidence.
    const r = ztv('audit', 'verify', ...auditorArgs(), '--cloud', fed.urls.cloud);
    expect(r.code, r.out + r.err).toBe(1);
    const producer = block(r.out, 'producer');
    const rolled = /record (\d+): rolled-back: /.exec(producer);
    expect(rolled, producer).not.toBeNull();
    // At the head it was set back to (its next interval signed it) or a little after (this read).
    expect(Number(rolled![1])).toBeGreaterThanOrEqual(cut);
    expect(Number(rolled![1])).toBeLessThan(head);
    expect(producer).toMatch(
      new RegExp(`: truncated: the witness saw the chain reach record ${head}`),
    );
    expect(block(r.out, 'cloud')).toMatch(
      /chain intact up to record \d+; reaches the witnessed record/,
    );
    // The database read directly says the same, and the producer's health raises the alarm.
    const db = ztv('audit', 'verify', '--data', dir, '--party', 'producer', ...witnessArgs());
    expect(db.code).toBe(1);
    expect(db.out).toContain(`record ${rolled![1]}: rolled-back`);
    const health = (await (await fetch(`${fed.urls.producer}/health/audit`)).json()) as {
      witness: { state: string; refused?: { kind: string } };
    };
    expect(health.witness).toMatchObject({ state: 'refused', refused: { kind: 'rolled-back' } });
  });

  it('the consumer rolled back to an earlier record with its later checkpoints removed: truncated, then rolled back once it appends', async () => {
    const { trail } = await auditor.verifyChain('consumer');
    const head = trail.records.at(-1)!.seq;
    const cut = head - 8;
    expect(cut).toBeGreaterThan(1);
    await onDatabase(live('consumer'), [
      ['DELETE FROM audit_records WHERE seq > ?', [cut]],
      ['DELETE FROM audit_objects WHERE seq > ?', [cut]],
      ['DELETE FROM audit_checkpoints WHERE seq > ?', [cut]],
      ['UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1', [cut, trail.records[cut - 1]!.hash]],
    ]);
    // Nothing appended yet: a consistent chain, shorter than what the witness saw.
    const db = ztv('audit', 'verify', '--data', dir, '--party', 'consumer', ...witnessArgs());
    expect(db.code, db.out + db.err).toBe(1);
    expect(db.out).toContain(
      `record ${cut + 1}: truncated: the witness saw the chain reach record ${head}`,
    );
    // Signing in and reading append to it: its next checkpoint is lower than the witnessed one.
    const r = ztv('audit', 'verify', ...auditorArgs(), '--cloud', fed.urls.cloud);
    expect(r.code).toBe(1);
    expect(block(r.out, 'consumer')).toMatch(/record \d+: rolled-back: /);
  });

  it("the cloud's database restored from an older copy: caught when it restarts, rolled back", async () => {
    await auditor.verifyChain('cloud');
    const backup = file(dialect === 'sqlite' ? 'cloud-backup.sqlite' : 'cloud-backup.dump');
    if (dialect === 'sqlite') {
      const src = new SQLite(join(dir, 'cloud', 'cloud.sqlite'), { readonly: true });
      await src.backup(backup);
      src.close();
    } else {
      const d = spawnSync('pg_dump', ['-Fc', '-n', 'ztv_cloud', '-f', backup, databaseUrl!], {
        encoding: 'utf8',
      });
      expect(d.status, d.stderr).toBe(0);
    }
    // The cloud goes on (each read appends to its chain; the last is witnessed), then the backup is
    // restored.
    for (let i = 0; i < 5; i++) await auditor.trail('cloud', { subtype: 'retrieve' });
    const { local } = await auditor.verifyChain('cloud');
    const witnessed = local.witness?.consulted ? local.head!.seq : 0;
    await auditor.close();
    await fed.kill('cloud');
    if (dialect === 'sqlite') {
      for (const f of ['cloud.sqlite-wal', 'cloud.sqlite-shm'])
        rmSync(join(dir, 'cloud', f), { force: true });
      copyFileSync(backup, join(dir, 'cloud', 'cloud.sqlite'));
    } else {
      await onDatabase({ schema: 'public' }, [['DROP SCHEMA ztv_cloud CASCADE', []]]);
      const r = spawnSync('pg_restore', ['-d', databaseUrl!, backup], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    await fed.start('cloud');
    // At its start the cloud compares its head with the witness's: refused, and its health says so.
    await expect
      .poll(
        async () =>
          (
            (await (await fetch(`${fed.urls.cloud}/health/audit`)).json()) as {
              witness: { state: string };
            }
          ).witness.state,
        { timeout: 20_000, interval: 250 },
      )
      .toBe('refused');
    const r = ztv('audit', 'verify', ...auditorArgs(), '--cloud', fed.urls.cloud);
    expect(r.code).toBe(1);
    const cloud = block(r.out, 'cloud');
    expect(cloud).toMatch(/record \d+: rolled-back: /);
    expect(cloud).toContain(`: truncated: the witness saw the chain reach record ${witnessed}`);
  });
});
