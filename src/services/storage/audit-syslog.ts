/**
 * Every record of a party's audit chain, also sent as a DICOM audit message (PS3.15 A.5, the XML of
 * the export) to the hospital's audit repository over syslog: TLS with octet-counted framing
 * (RFC 5425, PS3.15 A.6) or UDP (RFC 5426). The chain itself is the queue: each collector has a
 * cursor in the party's database (`audit_syslog`, the last record it is taken to hold), so a
 * collector that is down loses nothing — once back it receives everything after its cursor, in order.
 *
 * Syslog over TLS has no acknowledgement: bytes a collector received in its socket but never stored
 * are lost to it when it stops. So a record written on a TLS connection counts as delivered only once
 * the connection has stayed up `settleMs` after the write; when a connection drops, everything after
 * the cursor is sent again on the next one. A collector may thus receive a record twice (after a
 * restart), never miss one; each message names its record (`party:seq`) so duplicates are evident.
 * Over UDP nothing can be known after the send: a record counts as delivered once the datagram left.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connect, type TLSSocket } from 'node:tls';
import type { Kysely } from 'kysely';
import { ZtvError } from '../../core/errors.ts';
import { toAuditMessage } from '../../core/audit/dicom.ts';
import type { AuditRecord } from '../../core/audit/record.ts';
import { AEAD_CIPHERS } from '../common/tls.ts';
import { rowToRecord } from './audit-reader.ts';
import type { AuditTables } from './audit-store.ts';

/** A collector: `tls://host:port` (RFC 5425) or `udp://host:port` (RFC 5426). */
export interface SyslogTarget {
  readonly protocol: 'tls' | 'udp';
  readonly host: string;
  readonly port: number;
}

export const targetUrl = (t: SyslogTarget): string =>
  `${t.protocol}://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;

/** Parses `tls://host:port` or `udp://host:port` (the port defaults to 6514 and 514). */
export function parseSyslogTarget(v: string): SyslogTarget {
  const m = /^(tls|udp):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(v.trim());
  const port = m ? Number(m[3] ?? (m[1] === 'tls' ? 6514 : 514)) : NaN;
  if (!m || !(port > 0 && port < 65536))
    throw new ZtvError(
      'bad-input',
      `${v}: a syslog collector is tls://host[:port] (RFC 5425) or udp://host[:port] (RFC 5426)`,
    );
  return { protocol: m[1] as 'tls' | 'udp', host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

/** PS3.15 A.6: facility 10 (security/authorization); severity 5 (notice), 4 (warning) for failures. */
const pri = (r: AuditRecord): number => 10 * 8 + (r.outcome === 0 ? 5 : 4);
const HOST = (hostname().replace(/[^\x21-\x7e]/g, '') || '-').slice(0, 255);
/** The largest UDP payload (IPv4); a longer message cannot be carried by RFC 5426. */
export const MAX_DATAGRAM = 65_507;

/**
 * One record as an RFC 5424 SYSLOG-MSG: the header (the record's time, this host, `ztv-<party>`, the
 * process, MSGID `DICOM+RFC3881` as IHE ATNA asks), no structured data, and the audit message as a
 * UTF-8 MSG with its BOM.
 */
export function syslogMessage(r: AuditRecord, site?: string): Buffer {
  const header = `<${pri(r)}>1 ${r.time} ${HOST} ztv-${r.party} ${process.pid} DICOM+RFC3881 - `;
  return Buffer.concat([
    Buffer.from(header, 'ascii'),
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from(toAuditMessage(r, site ? { site } : {}), 'utf8'),
  ]);
}

/** RFC 5425 octet-counting: `MSG-LEN SP SYSLOG-MSG`. */
export const octetCounted = (msg: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`${msg.length} `, 'ascii'), msg]);

export interface SyslogTls {
  /** PEM of the CA(s) that certify collectors. */
  readonly ca: string;
  /** The party's certificate and key, presented to the collector (mutual TLS, as ATNA asks). */
  readonly cert?: string;
  readonly key?: string;
}

export interface AuditSyslogOptions {
  readonly tls?: SyslogTls;
  /** AuditEnterpriseSiteID of the messages. */
  readonly site?: string;
  /** How long a TLS connection must stay up after a write for it to count as delivered. */
  readonly settleMs?: number;
  /** How often the chain is looked at for new records besides the wake-ups of appends. */
  readonly pollMs?: number;
  /** Longest wait between two connection attempts to a collector that is down. */
  readonly maxBackoffMs?: number;
  /** Told (without any content) when a collector goes down or comes back. */
  readonly onState?: (collector: string, state: CollectorState['state'], error?: string) => void;
}

export interface CollectorState {
  readonly collector: string;
  readonly state: 'connecting' | 'up' | 'down';
  /** The last record the collector is taken to hold. */
  readonly delivered: number;
  readonly since?: string;
  readonly error?: string;
  /** UDP only: records too long for one datagram, skipped. */
  readonly skipped?: number;
}

const BATCH = 64;

/** One collector's connection and cursor. */
class Collector {
  readonly url: string;
  private socket: TLSSocket | UdpSocket | undefined;
  private state: CollectorState['state'] = 'connecting';
  private since: string | undefined;
  private error: string | undefined;
  /** The cursor as stored. */
  private delivered = 0;
  /** The last record written on the current connection. */
  private sent = 0;
  /** TLS: records written, not yet settled (seq, when the write completed). */
  private unsettled: { seq: number; at: number }[] = [];
  private skipped = 0;
  private pumping: Promise<void> | undefined;
  private again = false;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private backoff = 0;
  private closed = false;
  private readonly loaded: Promise<void>;

  constructor(
    readonly target: SyslogTarget,
    private readonly db: Kysely<AuditTables>,
    private readonly opts: AuditSyslogOptions,
  ) {
    this.url = targetUrl(target);
    this.loaded = this.load();
  }

  private async load(): Promise<void> {
    const row = await this.db
      .selectFrom('audit_syslog')
      .select('seq')
      .where('collector', '=', this.url)
      .executeTakeFirst();
    if (!row)
      await this.db
        .insertInto('audit_syslog')
        .values({ collector: this.url, seq: 0 })
        .onConflict((oc) => oc.column('collector').doNothing())
        .execute();
    this.delivered = this.sent = row?.seq ?? 0;
  }

  status(): CollectorState {
    return {
      collector: this.url,
      state: this.state,
      delivered: this.delivered,
      ...(this.since ? { since: this.since } : {}),
      ...(this.error ? { error: this.error } : {}),
      ...(this.target.protocol === 'udp' ? { skipped: this.skipped } : {}),
    };
  }

  private setState(state: CollectorState['state'], error?: string): void {
    if (state !== this.state) {
      this.since = new Date().toISOString();
      this.opts.onState?.(this.url, state, error);
    }
    this.state = state;
    this.error = error;
  }

  /** Sends what the chain holds after the cursor; one round at a time. */
  wake(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.pumping) {
      this.again = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      do {
        this.again = false;
        await this.pump();
      } while (this.again && !this.closed);
    })()
      .catch((e: unknown) => this.drop(e))
      .finally(() => (this.pumping = undefined));
    return this.pumping;
  }

  private async pump(): Promise<void> {
    await this.loaded;
    await this.settle();
    if (!this.socket) {
      if (this.retry) return;
      await this.open();
    }
    for (;;) {
      const socket = this.socket;
      if (!socket || this.closed) return;
      const rows = await this.db
        .selectFrom('audit_records')
        .selectAll()
        .where('seq', '>', this.sent)
        .orderBy('seq')
        .limit(BATCH)
        .execute();
      if (rows.length === 0) return;
      for (const row of rows) {
        const r = rowToRecord(row);
        const msg = syslogMessage(r, this.opts.site);
        if (socket !== this.socket) return;
        if (this.target.protocol === 'udp') await this.sendUdp(socket as UdpSocket, r.seq, msg);
        else await this.write(socket as TLSSocket, r.seq, msg);
      }
    }
  }

  private open(): Promise<void> {
    const { protocol, host, port } = this.target;
    this.setState('connecting', this.error);
    if (protocol === 'udp') {
      // Connectionless: each datagram is addressed (and the name resolved) as it is sent.
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      s.on('error', (e) => this.drop(e, s));
      s.unref();
      this.socket = s;
      this.backoff = 0;
      this.setState('up');
      return Promise.resolve();
    }
    const tls = this.opts.tls;
    if (!tls) throw new ZtvError('bad-input', `${this.url}: syslog over TLS needs a CA`);
    return new Promise<void>((resolve) => {
      const s = connect({
        host,
        port,
        ca: tls.ca,
        ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
        minVersion: 'TLSv1.2',
        ciphers: AEAD_CIPHERS,
        rejectUnauthorized: true,
        servername: /^[\d.:]+$/.test(host) ? undefined : host,
      });
      s.setNoDelay(true);
      s.setKeepAlive(true, 10_000);
      const fail = (e: unknown) => {
        s.destroy();
        this.drop(e);
        resolve();
      };
      s.once('secureConnect', () => {
        s.off('error', fail);
        s.on('error', (e) => this.drop(e, s));
        // A collector closing (stopped, restarted) ends the stream: what was not settled is resent.
        s.on('end', () => this.drop(new Error('the collector closed the connection'), s));
        s.on('close', () => this.drop(new Error('the connection closed'), s));
        s.on('data', () => undefined);
        this.socket = s;
        this.sent = this.delivered;
        this.unsettled = [];
        this.backoff = 0;
        this.setState('up');
        resolve();
      });
      s.once('error', fail);
    });
  }

  private write(s: TLSSocket, seq: number, msg: Buffer): Promise<void> {
    return new Promise<void>((resolve) => {
      this.sent = seq;
      s.write(octetCounted(msg), (e) => {
        if (e) this.drop(e, s);
        else if (s === this.socket) this.unsettled.push({ seq, at: Date.now() });
        resolve();
      });
    });
  }

  private sendUdp(s: UdpSocket, seq: number, msg: Buffer): Promise<void> {
    return new Promise<void>((resolve) => {
      this.sent = seq;
      if (msg.length > MAX_DATAGRAM) {
        this.skipped++;
        void this.store(seq).then(resolve, resolve);
        return;
      }
      s.send(msg, this.target.port, this.target.host, (e) => {
        if (e) {
          this.drop(e, s);
          resolve();
        } else void this.store(seq).then(resolve, resolve);
      });
    });
  }

  /** TLS: moves the cursor over what was written long enough ago on a connection still up. */
  private async settle(): Promise<void> {
    if (this.target.protocol !== 'tls' || !this.socket) return;
    const before = Date.now() - (this.opts.settleMs ?? 2_000);
    let seq = 0;
    while (this.unsettled.length && this.unsettled[0]!.at <= before)
      seq = this.unsettled.shift()!.seq;
    if (seq) await this.store(seq);
  }

  private async store(seq: number): Promise<void> {
    if (seq <= this.delivered) return;
    this.delivered = seq;
    await this.db
      .updateTable('audit_syslog')
      .set({ seq })
      .where('collector', '=', this.url)
      .execute();
  }

  /** The connection failed: resend from the cursor on the next one, after a pause. */
  private drop(e: unknown, which?: TLSSocket | UdpSocket): void {
    // An event of a connection already given up (its late 'close') changes nothing.
    if (which && which !== this.socket) return;
    const s = this.socket;
    this.socket = undefined;
    this.unsettled = [];
    this.sent = this.delivered;
    if (s && 'destroy' in s) s.destroy();
    else if (s) s.close();
    if (this.closed) return;
    this.setState('down', (e as Error).message.slice(0, 200));
    if (this.retry) return;
    this.backoff = Math.min(Math.max(this.backoff * 2, 100), this.opts.maxBackoffMs ?? 5_000);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.wake();
    }, this.backoff);
    this.retry.unref?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.pumping?.catch(() => undefined);
    const s = this.socket;
    this.socket = undefined;
    if (s && 'end' in s) s.end();
    else if (s) s.close();
  }
}

/**
 * A party's audit forwarding to its collectors. `wake()` after an append (the store calls it); a
 * timer also looks every `pollMs`, which settles TLS writes and retries collectors that were down.
 */
export class AuditSyslog {
  private readonly collectors: Collector[];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    db: Kysely<AuditTables>,
    targets: readonly SyslogTarget[],
    opts: AuditSyslogOptions = {},
  ) {
    this.collectors = targets.map((t) => new Collector(t, db, opts));
    this.timer = setInterval(() => void this.wake(), opts.pollMs ?? 1_000);
    this.timer.unref?.();
    void this.wake();
  }

  wake(): Promise<void> {
    return Promise.all(this.collectors.map((c) => c.wake())).then(() => undefined);
  }

  status(): CollectorState[] {
    return this.collectors.map((c) => c.status());
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.collectors.map((c) => c.close()));
  }
}

/** The TLS material for collectors: the CA file given, else the federation root. */
export function syslogTls(
  caFile: string | undefined,
  pkiRootPem: string,
  identity: { cert: string; key: string },
): SyslogTls {
  return { ca: caFile ? readFileSync(caFile, 'utf8') : pkiRootPem, ...identity };
}
