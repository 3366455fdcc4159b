/**
 * The federation's configuration, from the environment with embedded defaults: where each party keeps
 * its data, which ports it listens on, the shared PKI directory, and PostgreSQL when DATABASE_URL is
 * set (each party in its own schema; SQLite files otherwise).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ZtvError } from '../../core/errors.ts';
import { parseSyslogTarget, targetUrl, type SyslogTarget } from '../storage/audit-syslog.ts';
import { writeOutput } from './files.ts';

export const PARTY_NAMES = ['authority', 'producer', 'cloud', 'consumer'] as const;
export type PartyName = (typeof PARTY_NAMES)[number];

export interface FederationConfig {
  readonly dataDir: string;
  readonly pkiDir: string;
  readonly host: string;
  readonly ports: {
    readonly authority: number;
    readonly producer: number;
    readonly cloud: number;
    readonly cloudInternal: number;
    readonly consumer: number;
  };
  readonly databaseUrl?: string;
  /** On PostgreSQL, each party lives in the schema `<prefix>_<party>`. */
  readonly dbSchemaPrefix: string;
  /** Static files of the viewer the consumer hospital serves. */
  readonly viewerDir: string;
  readonly logLevel: string;
  /** How long a blind ticket may be redeemed and its images retrieved (milliseconds). */
  readonly ticketTtlMs: number;
  /** The producer's DICOM node (C-ECHO, C-STORE): `port` null when switched off. */
  readonly dimse: DimseConfig;
  /** Where each party sends its audit messages over syslog (docs/services.md). */
  readonly auditSyslog: AuditSyslogConfig;
}

export interface AuditSyslogConfig {
  /** The collectors of each party (none: no forwarding). */
  readonly parties: Readonly<Record<PartyName, readonly SyslogTarget[]>>;
  /** PEM file of the CA that certifies the collectors (default: the federation root). */
  readonly caFile?: string;
  /** AuditEnterpriseSiteID of the messages. */
  readonly site?: string;
}

/**
 * `ZTV_AUDIT_SYSLOG` (every party) or `ZTV_AUDIT_SYSLOG_<PARTY>` (that party; `off` for none): a
 * comma-separated list of `tls://host[:port]` and `udp://host[:port]` collectors.
 */
function auditSyslogConfig(env: NodeJS.ProcessEnv): AuditSyslogConfig {
  const list = (name: string, v: string): SyslogTarget[] =>
    v.trim() === 'off'
      ? []
      : v
          .split(',')
          .filter((t) => t.trim() !== '')
          .map((t) => {
            try {
              return parseSyslogTarget(t);
            } catch (e) {
              throw new ZtvError('bad-input', `${name}: ${(e as Error).message}`);
            }
          });
  const all = list('ZTV_AUDIT_SYSLOG', env.ZTV_AUDIT_SYSLOG ?? '');
  const parties = Object.fromEntries(
    PARTY_NAMES.map((p) => {
      const name = `ZTV_AUDIT_SYSLOG_${p.toUpperCase()}`;
      const v = env[name];
      return [p, v === undefined || v === '' ? all : list(name, v)];
    }),
  ) as Record<PartyName, SyslogTarget[]>;
  const site = env.ZTV_AUDIT_SITE?.trim();
  if (site && !/^[\x20-\x7e]{1,64}$/.test(site))
    throw new ZtvError('bad-input', 'ZTV_AUDIT_SITE is 1 to 64 printable ASCII characters');
  return {
    parties,
    ...(env.ZTV_AUDIT_SYSLOG_CA ? { caFile: resolve(env.ZTV_AUDIT_SYSLOG_CA) } : {}),
    ...(site ? { site } : {}),
  };
}

export interface DimseConfig {
  readonly port: number | null;
  readonly aeTitle: string;
  /** Calling AE titles accepted at association; `*` accepts any. */
  readonly callingAeTitles: readonly string[];
  /** DICOM TLS: PEM files of the hospital's certificate and key, and of the senders' CA (optional). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile?: string };
}

const AE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;

const aeTitle = (name: string, v: string): string => {
  const t = v.trim();
  if (!AE.test(t) || t === '')
    throw new ZtvError('bad-input', `${name}=${v}: an AE title is 1 to 16 printable characters`);
  return t;
};

function dimseConfig(env: NodeJS.ProcessEnv): DimseConfig {
  const off = env.ZTV_PORT_DIMSE === 'off';
  const callers = (env.ZTV_DIMSE_CALLING_AE_TITLES ?? 'STORESCU,ECHOSCU,ORTHANC')
    .split(',')
    .filter((a) => a.trim() !== '')
    .map((a) => (a.trim() === '*' ? '*' : aeTitle('ZTV_DIMSE_CALLING_AE_TITLES', a)));
  const cert = env.ZTV_DIMSE_TLS_CERT;
  const key = env.ZTV_DIMSE_TLS_KEY;
  if (!!cert !== !!key)
    throw new ZtvError(
      'bad-input',
      'DICOM TLS needs both ZTV_DIMSE_TLS_CERT and ZTV_DIMSE_TLS_KEY',
    );
  return {
    port: off ? null : port(env, 'ZTV_PORT_DIMSE', 11112),
    aeTitle: aeTitle('ZTV_DIMSE_AE_TITLE', env.ZTV_DIMSE_AE_TITLE ?? 'ZTV_PRODUCER'),
    callingAeTitles: callers,
    ...(cert && key
      ? {
          tls: {
            certFile: resolve(cert),
            keyFile: resolve(key),
            ...(env.ZTV_DIMSE_TLS_CA ? { caFile: resolve(env.ZTV_DIMSE_TLS_CA) } : {}),
          },
        }
      : {}),
  };
}

const port = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new ZtvError('bad-input', `${name}=${v} is not a port number`);
  return n;
};

const duration = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1000 || n > 24 * 3600_000)
    throw new ZtvError('bad-input', `${name}=${v} must be milliseconds between 1000 and 86400000`);
  return n;
};

const schemaPrefix = (v: string): string => {
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(v))
    throw new ZtvError('bad-input', `ZTV_DB_SCHEMA_PREFIX=${v} is not a lower-case SQL identifier`);
  return v;
};

export function federationConfig(env: NodeJS.ProcessEnv = process.env): FederationConfig {
  const dataDir = resolve(env.ZTV_DATA ?? 'var/federation');
  return {
    dataDir,
    pkiDir: resolve(env.ZTV_PKI ?? join(dataDir, 'pki')),
    host: env.ZTV_HOST ?? '127.0.0.1',
    ports: {
      authority: port(env, 'ZTV_PORT_AUTHORITY', 8441),
      producer: port(env, 'ZTV_PORT_PRODUCER', 8442),
      cloud: port(env, 'ZTV_PORT_CLOUD', 8443),
      cloudInternal: port(env, 'ZTV_PORT_CLOUD_INTERNAL', 8444),
      consumer: port(env, 'ZTV_PORT_CONSUMER', 8080),
    },
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    dbSchemaPrefix: schemaPrefix(env.ZTV_DB_SCHEMA_PREFIX ?? 'ztv'),
    viewerDir: resolve(env.ZTV_VIEWER_DIR ?? 'dist/viewer'),
    logLevel: env.ZTV_LOG_LEVEL ?? 'info',
    ticketTtlMs: duration(env, 'ZTV_TICKET_TTL_MS', 15 * 60_000),
    dimse: dimseConfig(env),
    auditSyslog: auditSyslogConfig(env),
  };
}

/** Environment variables that give a child process this configuration. */
export function configEnv(c: FederationConfig): Record<string, string> {
  return {
    ZTV_DATA: c.dataDir,
    ZTV_PKI: c.pkiDir,
    ZTV_HOST: c.host,
    ZTV_PORT_AUTHORITY: String(c.ports.authority),
    ZTV_PORT_PRODUCER: String(c.ports.producer),
    ZTV_PORT_CLOUD: String(c.ports.cloud),
    ZTV_PORT_CLOUD_INTERNAL: String(c.ports.cloudInternal),
    ZTV_PORT_CONSUMER: String(c.ports.consumer),
    ZTV_VIEWER_DIR: c.viewerDir,
    ZTV_LOG_LEVEL: c.logLevel,
    ZTV_TICKET_TTL_MS: String(c.ticketTtlMs),
    ZTV_DB_SCHEMA_PREFIX: c.dbSchemaPrefix,
    ZTV_PORT_DIMSE: c.dimse.port === null ? 'off' : String(c.dimse.port),
    ZTV_DIMSE_AE_TITLE: c.dimse.aeTitle,
    ZTV_DIMSE_CALLING_AE_TITLES: c.dimse.callingAeTitles.join(','),
    ...(c.dimse.tls
      ? {
          ZTV_DIMSE_TLS_CERT: c.dimse.tls.certFile,
          ZTV_DIMSE_TLS_KEY: c.dimse.tls.keyFile,
          ...(c.dimse.tls.caFile ? { ZTV_DIMSE_TLS_CA: c.dimse.tls.caFile } : {}),
        }
      : {}),
    ...Object.fromEntries(
      PARTY_NAMES.map((p) => [
        `ZTV_AUDIT_SYSLOG_${p.toUpperCase()}`,
        c.auditSyslog.parties[p].map(targetUrl).join(',') || 'off',
      ]),
    ),
    ...(c.auditSyslog.caFile ? { ZTV_AUDIT_SYSLOG_CA: c.auditSyslog.caFile } : {}),
    ...(c.auditSyslog.site ? { ZTV_AUDIT_SITE: c.auditSyslog.site } : {}),
    ...(c.databaseUrl ? { DATABASE_URL: c.databaseUrl } : {}),
  };
}

export const urls = (c: FederationConfig) => ({
  authority: `https://${c.host}:${c.ports.authority}`,
  producer: `http://${c.host}:${c.ports.producer}`,
  cloud: `http://${c.host}:${c.ports.cloud}`,
  cloudInternal: `https://${c.host}:${c.ports.cloudInternal}`,
  consumer: `http://${c.host}:${c.ports.consumer}`,
});

/** Demo secrets made on first start (tokens for administrators and the producer's own systems). */
export interface Secrets {
  readonly adminToken: string;
  readonly stowToken: string;
}

export function loadSecrets(c: FederationConfig): Secrets {
  const path = join(c.dataDir, 'secrets.json');
  if (!existsSync(path))
    throw new ZtvError(
      'bad-input',
      `${path} is missing: start the federation with npm start first`,
    );
  return JSON.parse(readFileSync(path, 'utf8')) as Secrets;
}

export function saveSecrets(c: FederationConfig, s: Secrets): void {
  writeOutput(join(c.dataDir, 'secrets.json'), `${JSON.stringify(s, null, 2)}\n`, 0o600);
}

/** Where a party's database and files live. */
export const partyDir = (c: FederationConfig, party: PartyName): string => join(c.dataDir, party);
