// A party's audit records forwarded as DICOM audit messages to Debian's real rsyslog, started here
// unprivileged on free ports as the audit repository: over TLS (RFC 5425, octet counting, mutual
// authentication with certificates of the demo PKI) and over UDP (RFC 5426). Every record arrives as a
// message the shipped PS3.15 schema accepts, with the PRI and MSGID of PS3.15 A.6; records appended
// while the collector is stopped are held in the party's database and arrive, in order, once it is
// back; a forwarder restarted on the same database resumes where its collector stands; a party
// started with ZTV_AUDIT_SYSLOG_<PARTY> (as each service process is) forwards its records.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/core/audit/record.ts';
import { signingKeyFromPem } from '../src/core/crypto/keys.ts';
import { createDemoPki } from '../src/core/pki/demo.ts';
import { configEnv, federationConfig } from '../src/services/common/config.ts';
import { startParty } from '../src/services/common/party.ts';
import { producerMigrations } from '../src/services/producer/schema.ts';
import { writePkiDir } from '../src/services/common/pki-dir.ts';
import { freePorts } from '../src/services/launcher.ts';
import {
  AuditStore,
  auditMigrations,
  type AuditTables,
} from '../src/services/storage/audit-store.ts';
import { AuditSyslog, parseSyslogTarget, targetUrl } from '../src/services/storage/audit-syslog.ts';
import { openDatabase, type Database } from '../src/services/storage/db.ts';
import { validateAuditMessages } from './audit-schema.ts';

const entry = (n: number): AuditEntry =>
  n % 5 === 4
    ? {
        event: '110113',
        subtype: 'ticket-refused',
        action: 'E',
        outcome: 8,
        actor: { id: 'dr.eve', role: 'physician', organisation: 'consumer' },
        objects: [{ type: 'patient', id: 'a3f1c2d4e5f60718293a4b5c6d7e8f90' }],
        details: { reason: 'no permission', rules: ['DENY-DEFAULT'], n },
      }
    : {
        event: '110103',
        subtype: 'retrieve',
        action: 'R',
        outcome: 0,
        actor: { id: 'dr.alice', role: 'radiologist', organisation: 'consumer' },
        objects: [
          { type: 'study', id: '0f1e2d3c4b5a69788796a5b4c3d2e1f0' },
          { type: 'ticket', id: `5e5b9d2a0c4f47d1b9e3a6c8d0f2e4${String(n).padStart(2, '0')}` },
        ],
        details: { n, purpose: 'TREAT' },
      };

interface Line {
  readonly input: string;
  readonly pri: number;
  readonly app: string;
  readonly msgid: string;
  readonly seq: number;
  readonly xml: string;
}

const until = async (what: string, check: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('the syslog configuration', () => {
  it('takes collectors for every party, or per party, and refuses what is not a collector', () => {
    const c = federationConfig({
      ZTV_AUDIT_SYSLOG: 'tls://audit.hospital.example, udp://10.0.0.7:5514',
      ZTV_AUDIT_SYSLOG_CLOUD: 'tls://audit.cloud.example:7514',
      ZTV_AUDIT_SYSLOG_AUTHORITY: 'off',
    }).auditSyslog.parties;
    expect(c.producer.map(targetUrl)).toEqual([
      'tls://audit.hospital.example:6514',
      'udp://10.0.0.7:5514',
    ]);
    expect(c.consumer).toEqual(c.producer);
    expect(c.cloud.map(targetUrl)).toEqual(['tls://audit.cloud.example:7514']);
    expect(c.authority).toEqual([]);
    expect(federationConfig({}).auditSyslog.parties.producer).toEqual([]);
    expect(() => federationConfig({ ZTV_AUDIT_SYSLOG: 'tcp://audit:514' })).toThrow(
      /ZTV_AUDIT_SYSLOG: tcp:\/\/audit:514: a syslog collector is tls/,
    );
    // What a child process is given says the same.
    const env = configEnv(federationConfig({ ZTV_AUDIT_SYSLOG_PRODUCER: 'udp://[::1]:514' }));
    expect(env.ZTV_AUDIT_SYSLOG_PRODUCER).toBe('udp://[::1]:514');
  });

  it('a party started with it forwards its records (what each service process does)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ztv-syslog-party-'));
    const collector = createSocket('udp4');
    await new Promise<void>((r) => collector.bind(0, '127.0.0.1', () => r()));
    const received = new Promise<Buffer>((r) => collector.once('message', (m) => r(m)));
    try {
      await writePkiDir(join(dir, 'pki'), await createDemoPki(), new Uint8Array(32).fill(9));
      const config = federationConfig({
        ZTV_DATA: dir,
        ZTV_AUDIT_SYSLOG_PRODUCER: `udp://127.0.0.1:${collector.address().port}`,
      });
      const rt = await startParty(config, 'producer', producerMigrations);
      try {
        await rt.audit.append(entry(1));
        const msg = (await received).toString('utf8');
        expect(msg).toMatch(/^<85>1 \S+ \S+ ztv-producer \d+ DICOM\+RFC3881 - \uFEFF<\?xml/);
        expect(msg).toContain('ParticipantObjectID="producer:1"');
        expect(rt.audit.collectors()).toMatchObject([
          { collector: `udp://127.0.0.1:${collector.address().port}`, state: 'up' },
        ]);
      } finally {
        await rt.audit.close();
        await rt.database.close();
      }
    } finally {
      collector.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('audit messages to a syslog collector (rsyslog)', () => {
  let dir: string;
  let tlsPort: number;
  let udpPort: number;
  let rsyslog: ChildProcess | undefined;
  let database: Database<AuditTables>;
  let audit: AuditStore;
  const out = () => join(dir, 'collected.log');

  /** The collector's file, parsed: `input|pri|app|msgid|msg`. */
  const collected = (): Line[] =>
    existsSync(out())
      ? readFileSync(out(), 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => {
            const [input, pri, app, msgid, ...rest] = l.split('|');
            const xml = rest.join('|').replace(/^\uFEFF/, '');
            const seq = Number(/ParticipantObjectID="producer:(\d+)"/.exec(xml)?.[1]);
            return { input: input!, pri: Number(pri), app: app!, msgid: msgid!, seq, xml };
          })
      : [];
  const seqs = (input: string) =>
    collected()
      .filter((l) => l.input === input)
      .map((l) => l.seq);
  /** Every record 1..n arrived on `input`, and the first arrival of each is in chain order. */
  const complete = (input: string, n: number) => {
    const first = [...new Set(seqs(input))];
    return first.length === n && first.every((s, i) => s === i + 1);
  };

  const startCollector = async () => {
    rsyslog = spawn('rsyslogd', ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'pid')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    rsyslog.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    // Listening once a TCP connection is accepted.
    const end = Date.now() + 10_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect(tlsPort, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > end || rsyslog.exitCode !== null) throw new Error(`rsyslog: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stopCollector = async () => {
    const p = rsyslog!;
    rsyslog = undefined;
    if (p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  };

  const forwarder = (db: Database<AuditTables>) =>
    new AuditSyslog(
      db.db,
      [
        parseSyslogTarget(`tls://127.0.0.1:${tlsPort}`),
        parseSyslogTarget(`udp://127.0.0.1:${udpPort}`),
      ],
      {
        tls: {
          ca: readFileSync(join(dir, 'pki/ca.pem'), 'utf8'),
          cert: readFileSync(join(dir, 'pki/producer.pem'), 'utf8'),
          key: readFileSync(join(dir, 'pki/producer.key.pem'), 'utf8'),
        },
        settleMs: 300,
        pollMs: 100,
        maxBackoffMs: 200,
      },
    );

  const openStore = async () => {
    database = await openDatabase<AuditTables>({
      file: join(dir, 'producer.sqlite'),
      migrationTable: 'producer_migrations',
      migrations: auditMigrations,
    });
    const signer = await signingKeyFromPem(readFileSync(join(dir, 'pki/producer.key.pem'), 'utf8'));
    audit = new AuditStore(database, 'producer', signer, 100, undefined, {
      forward: forwarder(database),
    });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ztv-syslog-'));
    await writePkiDir(join(dir, 'pki'), await createDemoPki(), new Uint8Array(32).fill(7));
    [tlsPort = 0, udpPort = 0] = await freePorts(2);
    mkdirSync(join(dir, 'work'));
    // The audit repository: the authority's certificate of the demo PKI as its server certificate,
    // clients' certificates checked against the federation root (x509/certvalid).
    writeFileSync(
      join(dir, 'rsyslog.conf'),
      `global(workDirectory="${dir}/work" maxMessageSize="64k" net.enableDNS="off"
  defaultNetstreamDriverCAFile="${dir}/pki/ca.pem"
  defaultNetstreamDriverCertFile="${dir}/pki/authority.pem"
  defaultNetstreamDriverKeyFile="${dir}/pki/authority.key.pem")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imtcp" address="127.0.0.1" port="${tlsPort}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="${udpPort}")
template(name="ztv" type="string" string="%inputname%|%pri%|%app-name%|%msgid%|%msg%\\n")
action(type="omfile" file="${out()}" template="ztv")
`,
    );
    await startCollector();
    await openStore();
  }, 60_000);

  afterAll(async () => {
    await audit?.close();
    await database?.close();
    if (rsyslog) await stopCollector();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends every record over TLS and UDP as a schema-valid DICOM audit message', async () => {
    for (let n = 1; n <= 12; n++) await audit.append(entry(n));
    await until('12 records on both', () => complete('imtcp', 12) && complete('imudp', 12));
    const lines = collected();
    for (const l of lines) {
      expect(l.app).toBe('ztv-producer');
      expect(l.msgid).toBe('DICOM+RFC3881');
      // Facility 10 (security/authorization); severity 5, or 4 for a failure (every fifth record).
      expect(l.pri).toBe(l.seq % 5 === 4 ? 84 : 85);
    }
    const v = await validateAuditMessages(lines.map((l) => l.xml));
    expect(v.errors, v.rawOutput).toEqual([]);
    expect(v.valid).toBe(true);
    // …which means something: a message the schema forbids is refused in the same run.
    const broken = await validateAuditMessages([
      lines[0]!.xml,
      lines[1]!.xml.replaceAll('EventIdentification', 'EventIdent'),
    ]);
    expect(broken.valid).toBe(false);
    expect(broken.errors.map((e) => e.loc?.fileName)).toContain('message-1.xml');
    // The messages are the records: the chain's hash of each is in its message.
    const records = await audit.all();
    for (const l of lines)
      expect(l.xml).toContain(`<ParticipantObjectName>${records[l.seq - 1]!.hash}<`);
    // The TLS collector is taken to hold them once the connection stayed up after the writes.
    await until('the TLS cursor', () => audit.collectors()[0]!.delivered === 12);
    expect(audit.collectors().map((c) => c.state)).toEqual(['up', 'up']);
  });

  it('loses nothing while the collector is down, and resends in order when it is back', async () => {
    await stopCollector();
    for (let n = 13; n <= 20; n++) await audit.append(entry(n));
    await until('the TLS collector seen down', () => audit.collectors()[0]!.state !== 'up');
    const held = await database.db
      .selectFrom('audit_syslog')
      .selectAll()
      .where('collector', '=', `tls://127.0.0.1:${tlsPort}`)
      .executeTakeFirstOrThrow();
    expect(held.seq).toBe(12);
    await startCollector();
    await until('20 records over TLS', () => complete('imtcp', 20));
    // In order: the records held arrive after what came before and in the chain's order.
    const tls = seqs('imtcp');
    expect(tls.slice(tls.indexOf(13))).toEqual([13, 14, 15, 16, 17, 18, 19, 20]);
    const v = await validateAuditMessages(
      collected()
        .filter((x) => x.seq > 12)
        .map((l) => l.xml),
    );
    expect(v.errors, v.rawOutput).toEqual([]);
    await until('the TLS cursor at 20', () => audit.collectors()[0]!.delivered === 20);
  });

  it('a restarted party resumes from its collector cursor, sending nothing twice', async () => {
    await audit.close();
    await database.close();
    const before = seqs('imtcp').length;
    await openStore();
    await audit.append(entry(21));
    await until('record 21 over TLS', () => complete('imtcp', 21));
    const after = seqs('imtcp').slice(before);
    expect(after).toEqual([21]);
  });
});
