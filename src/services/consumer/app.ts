/**
 * The consumer hospital service: its clinicians sign in (scrypt password hashes), enrol their browsers'
 * devices (a CSR from a non-extractable key; the hospital's device CA certifies it with the clinician's
 * identity and structural role), revoke devices, and find the trust material the viewer pins. It never
 * sees an image key or an image.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely, Migration } from 'kysely';
import { randomBytes, toBase64Url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { createCrl, crlPem, issueDeviceFromCsr, type Issuer } from '../../core/pki/issue.ts';
import type { SigningKey } from '../../core/crypto/keys.ts';
import type { StructuralRole } from '../../core/pki/oids.ts';
import { issueRoleAssignment } from '../../core/policy/statements.ts';
import { thumbprint } from '../../core/pki/validate.ts';
import { createApp, HttpError } from '../common/http.ts';
import type { LoadedPki } from '../common/pki-dir.ts';
import { checkSecret } from '../common/secrets.ts';
import {
  auditMigration,
  auditWitnessMigration,
  type AuditStore,
  type AuditTables,
} from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';

export interface ConsumerTables extends AuditTables {
  clinicians: {
    id: string;
    name: string;
    password_hash: string;
    role: string;
    domain: string;
    active: number;
  };
  login_tokens: { token_hash: string; clinician_id: string; expires_at: number; revoked: number };
  devices: {
    serial: string;
    clinician_id: string;
    thumbprint: string;
    pem: string;
    issued_at: string;
    revoked_at: string | null;
  };
  device_crls: { seq: number; pem: string; this_update: string };
  /** Who takes care of whom: the source of functional-role assignments. */
  care: {
    clinician_id: string;
    role: string;
    patient: string | null;
    study: string | null;
    until: number;
  };
}

export const consumerMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0002_consumer': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('clinicians')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema
        .createTable('login_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('clinician_id', 'text', (c) => c.notNull().references('clinicians.id'))
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable('devices')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('clinician_id', 'text', (c) => c.notNull().references('clinicians.id'))
        .addColumn('thumbprint', 'text', (c) => c.notNull())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('care')
        .addColumn('clinician_id', 'text', (c) => c.notNull().references('clinicians.id'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('patient', 'text')
        .addColumn('study', 'text')
        .addColumn('until', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('device_crls')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('this_update', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

export interface ConsumerDeps {
  readonly database: Database<ConsumerTables>;
  readonly hospitalName: string;
  readonly deviceCa: Issuer;
  readonly pki: () => LoadedPki;
  readonly audit: AuditStore;
  /** The hospital's member id in the trust group, and its key: it signs role assignments. */
  readonly memberId: string;
  readonly signer: SigningKey;
  /** Origins allowed to call from a browser (the viewer). */
  readonly corsOrigins?: readonly string[];
  readonly loginTtlMs?: number;
  readonly logLevel?: string;
  readonly now?: () => number;
}

export interface Clinician {
  readonly id: string;
  readonly name: string;
  readonly role: StructuralRole;
  readonly domain: string;
}

const tokenHash = (token: string): string => toHex(sha256(utf8(token)));

/** Records that a clinician takes care of a patient (or reads a study) until a time. */
export async function addCare(
  db: Kysely<ConsumerTables>,
  c: { clinician: string; role: string; patient?: string; study?: string; until: number },
): Promise<void> {
  await db
    .insertInto('care')
    .values({
      clinician_id: c.clinician,
      role: c.role,
      patient: c.patient ?? null,
      study: c.study ?? null,
      until: c.until,
    })
    .execute();
}

/** Adds a clinician account (demo seeding, administration). */
export async function addClinician(
  db: Kysely<ConsumerTables>,
  c: Clinician & { passwordHash: string },
): Promise<void> {
  await db
    .insertInto('clinicians')
    .values({
      id: c.id,
      name: c.name,
      password_hash: c.passwordHash,
      role: c.role,
      domain: c.domain,
      active: 1,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

export async function buildConsumer(deps: ConsumerDeps): Promise<FastifyInstance> {
  const app = createApp({
    name: 'consumer',
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
  });
  const db = deps.database.db;
  const now = deps.now ?? Date.now;
  const audit = deps.audit;
  const origins = new Set(deps.corsOrigins ?? []);

  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (origin && origins.has(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'origin');
      reply.header('access-control-allow-headers', 'authorization, content-type');
      reply.header('access-control-allow-methods', 'GET, POST');
    }
    if (req.method === 'OPTIONS') return reply.code(204).send();
  });
  app.options('/*', async (_req, reply) => reply.code(204).send());

  const clinicianOf = async (req: FastifyRequest): Promise<Clinician> => {
    const token = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token) throw new HttpError(401, 'unauthenticated', 'sign in first');
    const row = await db
      .selectFrom('login_tokens')
      .innerJoin('clinicians', 'clinicians.id', 'login_tokens.clinician_id')
      .select([
        'clinicians.id',
        'clinicians.name',
        'clinicians.role',
        'clinicians.domain',
        'login_tokens.expires_at',
        'login_tokens.revoked',
        'clinicians.active',
      ])
      .where('login_tokens.token_hash', '=', tokenHash(token))
      .executeTakeFirst();
    if (!row || row.revoked || !row.active)
      throw new HttpError(401, 'unauthenticated', 'this sign-in is not valid; sign in again');
    if (row.expires_at < now())
      throw new HttpError(401, 'expired', 'this sign-in has expired; sign in again');
    return { id: row.id, name: row.name, role: row.role as StructuralRole, domain: row.domain };
  };

  app.post(
    '/login',
    {
      schema: {
        body: {
          type: 'object',
          required: ['user', 'password'],
          additionalProperties: false,
          properties: {
            user: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: 256 },
          },
        },
      },
    },
    async (req) => {
      const { user, password } = req.body as { user: string; password: string };
      const row = await db
        .selectFrom('clinicians')
        .selectAll()
        .where('id', '=', user)
        .executeTakeFirst();
      // Always run scrypt, so that unknown users take as long as wrong passwords.
      const ok =
        (await checkSecret(
          password,
          row?.password_hash ??
            'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        )) && !!row?.active;
      await audit.append({
        event: '110114',
        subtype: ok ? 'login' : 'login-failed',
        action: 'E',
        outcome: ok ? 0 : 4,
        actor: { id: ok ? user : 'unknown' },
        objects: [],
        details: {},
      });
      if (!ok || !row)
        throw new HttpError(401, 'unauthenticated', 'unknown user or wrong password');
      const token = toBase64Url(randomBytes(32));
      await db
        .insertInto('login_tokens')
        .values({
          token_hash: tokenHash(token),
          clinician_id: row.id,
          expires_at: now() + (deps.loginTtlMs ?? 8 * 3600_000),
          revoked: 0,
        })
        .execute();
      return {
        token,
        clinician: { id: row.id, name: row.name, role: row.role, hospital: deps.hospitalName },
      };
    },
  );

  app.post('/logout', async (req) => {
    const c = await clinicianOf(req);
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')![1]!;
    await db
      .updateTable('login_tokens')
      .set({ revoked: 1 })
      .where('token_hash', '=', tokenHash(token))
      .execute();
    await audit.append({
      event: '110114',
      subtype: 'logout',
      action: 'E',
      outcome: 0,
      actor: { id: c.id },
      objects: [],
      details: {},
    });
    return { ok: true };
  });

  app.post(
    '/devices',
    {
      schema: {
        body: {
          type: 'object',
          required: ['csr'],
          additionalProperties: false,
          properties: { csr: { type: 'string', minLength: 100, maxLength: 8192 } },
        },
      },
    },
    async (req) => {
      const c = await clinicianOf(req);
      const { csr } = req.body as { csr: string };
      const cert = await issueDeviceFromCsr(
        deps.deviceCa,
        csr,
        { id: c.id, role: c.role, domain: c.domain },
        deps.hospitalName,
      );
      const tp = await thumbprint(cert);
      await db
        .insertInto('devices')
        .values({
          serial: cert.serialNumber,
          clinician_id: c.id,
          thumbprint: tp,
          pem: cert.toString('pem'),
          issued_at: cert.notBefore.toISOString(),
          revoked_at: null,
        })
        .execute();
      await audit.append({
        event: '110114',
        subtype: 'device-enrolled',
        action: 'C',
        outcome: 0,
        actor: { id: c.id, role: c.role, device: tp },
        objects: [{ type: 'certificate', id: cert.serialNumber }],
        details: {},
      });
      return {
        certificate: cert.toString('pem'),
        chain: [cert.toString('pem'), deps.deviceCa.cert.toString('pem')],
        thumbprint: tp,
      };
    },
  );

  /** The clinician's functional roles, as signed statements for the producer's policy. */
  app.post('/role-assignments', async (req) => {
    const c = await clinicianOf(req);
    const rows = await db
      .selectFrom('care')
      .selectAll()
      .where('clinician_id', '=', c.id)
      .where('until', '>', now())
      .execute();
    const signer = { key: deps.signer, kid: deps.signer.publicKey.keyIdHex };
    const statements = await Promise.all(
      rows.map((r) =>
        issueRoleAssignment(signer, {
          iss: deps.memberId,
          sub: c.id,
          role: r.role,
          ...(r.patient ? { patient: r.patient } : {}),
          ...(r.study ? { study: r.study } : {}),
          nbf: now() - 60_000,
          exp: Math.min(r.until, now() + 8 * 3600_000),
        }),
      ),
    );
    await audit.append({
      event: '110114',
      subtype: 'role-assignments-issued',
      action: 'C',
      outcome: 0,
      actor: { id: c.id, role: c.role },
      objects: [],
      details: { count: statements.length },
    });
    return { statements };
  });

  app.post(
    '/devices/revocations',
    {
      schema: {
        body: {
          type: 'object',
          required: ['serial'],
          additionalProperties: false,
          properties: { serial: { type: 'string', pattern: '^[0-9a-f]{2,40}$' } },
        },
      },
    },
    async (req) => {
      const c = await clinicianOf(req);
      const { serial } = req.body as { serial: string };
      const d = await db
        .selectFrom('devices')
        .selectAll()
        .where('serial', '=', serial)
        .executeTakeFirst();
      if (!d || d.clinician_id !== c.id)
        throw new HttpError(404, 'unknown-device', `no device ${serial} of yours`);
      if (!d.revoked_at)
        await db
          .updateTable('devices')
          .set({ revoked_at: new Date(now()).toISOString() })
          .where('serial', '=', serial)
          .execute();
      await publishDeviceCrl();
      await audit.append({
        event: '110113',
        subtype: 'device-revoked',
        action: 'U',
        outcome: 0,
        actor: { id: c.id },
        objects: [{ type: 'certificate', id: serial }],
        details: {},
      });
      return { revoked: serial };
    },
  );

  const publishDeviceCrl = async (): Promise<string> => {
    const revoked = await db
      .selectFrom('devices')
      .select(['serial', 'revoked_at'])
      .where('revoked_at', 'is not', null)
      .execute();
    const crl = await createCrl(
      deps.deviceCa,
      revoked.map((r) => ({ serialNumber: r.serial, date: new Date(r.revoked_at!) })),
      new Date(now()),
    );
    const last = await db
      .selectFrom('device_crls')
      .select('seq')
      .orderBy('seq', 'desc')
      .executeTakeFirst();
    const pem = crlPem(crl);
    await db
      .insertInto('device_crls')
      .values({ seq: (last?.seq ?? 0) + 1, pem, this_update: crl.thisUpdate.toISOString() })
      .execute();
    return pem;
  };

  app.get('/crl.pem', async (_req, reply) => {
    const pem =
      (await db.selectFrom('device_crls').select('pem').orderBy('seq', 'desc').executeTakeFirst())
        ?.pem ?? (await publishDeviceCrl());
    return reply.type('application/pkix-crl').send(pem);
  });

  /** What the viewer pins and checks signers against: root, intermediates, CRLs, the trust group. */
  app.get('/trust', async () => {
    const pki = deps.pki();
    return {
      root: pki.root.toString('pem'),
      intermediates: pki.intermediates.map((c) => c.toString('pem')),
      organisations: pki.organisations.map((c) => c.toString('pem')),
      crls: pki.crls.map(crlPem),
      trustGroup: pki.trustGroupJws,
    };
  });

  return app;
}
