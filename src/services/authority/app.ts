/**
 * The central authority (CA) service: publishes the root certificate, its CRL and the signed trust
 * group; for authenticated administrators, issues organisation certificates from CSRs (admitting the
 * organisation to the trust group), revokes certificates (new CRL, new trust group without the
 * member) and removes members. Everything it does is appended to its audit chain.
 */
import type { ServerOptions as HttpsOptions } from 'node:https';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FlattenedJWS } from 'jose';
import type { Kysely, Migration } from 'kysely';
import {
  checkCsr,
  createCrl,
  crlPem,
  issueOrganisation,
  type Issuer,
} from '../../core/pki/issue.ts';
import { ORG_ROLES, type OrgRole } from '../../core/pki/oids.ts';
import {
  signTrustGroup,
  type TrustGroup,
  type TrustGroupMember,
} from '../../core/pki/trust-group.ts';
import { thumbprint } from '../../core/pki/validate.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import { createApp, HttpError } from '../common/http.ts';
import { checkSecret } from '../common/secrets.ts';
import type { AuditStore, AuditTables } from '../storage/audit-store.ts';
import { auditMigration, auditWitnessMigration } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import { witnessMigration, witnessPlugin, type WitnessTables } from './witness.ts';

export interface AuthorityTables extends AuditTables, WitnessTables {
  certificates: {
    serial: string;
    member_id: string;
    name: string;
    role: string;
    thumbprint: string;
    pem: string;
    issued_at: string;
    revoked_at: string | null;
    reason: string | null;
    /** 1 while the member is in the trust group; 0 once removed (the certificate stays valid). */
    admitted: number;
    /** For a hospital's device CA: the organisation its devices belong to. */
    organization: string | null;
  };
  trust_groups: { version: number; jws: string; issued_at: string };
  crls: { seq: number; pem: string; this_update: string };
}

export const authorityMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0002_authority': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('certificates')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('member_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('thumbprint', 'text', (c) => c.notNull().unique())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('reason', 'text')
        .addColumn('admitted', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('organization', 'text')
        .execute();
      await db.schema
        .createTable('trust_groups')
        .addColumn('version', 'integer', (c) => c.primaryKey())
        .addColumn('jws', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('crls')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('this_update', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0003_witness': witnessMigration,
};

export interface AuthorityDeps {
  readonly database: Database<AuthorityTables>;
  readonly root: Issuer;
  readonly audit: AuditStore;
  /** scrypt hash of the administrators' bearer token. */
  readonly adminTokenHash: string;
  readonly logLevel?: string;
  readonly now?: () => Date;
  /** Mutual TLS server options (the federation's services fetch the trust group and CRL here). */
  readonly https?: HttpsOptions;
}

const memberSchema = {
  type: 'object',
  required: ['id', 'name', 'role', 'domain', 'csr'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^[a-z][a-z0-9-]{1,62}$' },
    name: { type: 'string', minLength: 1, maxLength: 64 },
    role: { type: 'string', enum: [...ORG_ROLES] },
    domain: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)+$', maxLength: 128 },
    csr: { type: 'string', maxLength: 16384 },
    dnsNames: { type: 'array', maxItems: 8, items: { type: 'string', maxLength: 253 } },
    ipAddresses: { type: 'array', maxItems: 8, items: { type: 'string', maxLength: 45 } },
  },
} as const;

/** The authority's state operations, shared by routes and start-up. */
export class Authority {
  constructor(private readonly deps: AuthorityDeps) {}

  private get db() {
    return this.deps.database.db;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Records a certificate issued elsewhere (the demo PKI made at first start). */
  async importCertificate(
    cert: X509Certificate,
    memberId: string,
    name: string,
    role: OrgRole,
    organization?: string,
  ): Promise<void> {
    await this.db
      .insertInto('certificates')
      .values({
        serial: cert.serialNumber,
        member_id: memberId,
        name,
        role,
        thumbprint: await thumbprint(cert),
        pem: cert.toString('pem'),
        issued_at: cert.notBefore.toISOString(),
        revoked_at: null,
        reason: null,
        admitted: 1,
        organization: organization ?? null,
      })
      .onConflict((oc) => oc.column('serial').doNothing())
      .execute();
  }

  /** Publishes a new trust group version: every admitted member with an unrevoked certificate. */
  async publishTrustGroup(): Promise<TrustGroup> {
    const rows = await this.db
      .selectFrom('certificates')
      .selectAll()
      .where('revoked_at', 'is', null)
      .where('admitted', '=', 1)
      .orderBy('member_id')
      .execute();
    const latest = await this.db
      .selectFrom('trust_groups')
      .select('version')
      .orderBy('version', 'desc')
      .executeTakeFirst();
    const members: TrustGroupMember[] = rows.map((r) => ({
      id: r.member_id,
      name: r.name,
      role: r.role as OrgRole,
      certificate: r.thumbprint,
      ...(r.organization ? { organization: r.organization } : {}),
    }));
    const group: TrustGroup = {
      version: (latest?.version ?? 0) + 1,
      issuedAt: this.now().toISOString(),
      members,
    };
    const jws = await signTrustGroup(group, this.deps.root);
    await this.db
      .insertInto('trust_groups')
      .values({ version: group.version, jws: JSON.stringify(jws), issued_at: group.issuedAt })
      .execute();
    return group;
  }

  /** Publishes a new CRL of the root listing every revoked certificate. */
  async publishCrl(): Promise<string> {
    const revoked = await this.db
      .selectFrom('certificates')
      .select(['serial', 'revoked_at'])
      .where('revoked_at', 'is not', null)
      .execute();
    const crl = await createCrl(
      this.deps.root,
      revoked.map((r) => ({ serialNumber: r.serial, date: new Date(r.revoked_at!) })),
      this.now(),
    );
    const latest = await this.db
      .selectFrom('crls')
      .select('seq')
      .orderBy('seq', 'desc')
      .executeTakeFirst();
    const pem = crlPem(crl);
    await this.db
      .insertInto('crls')
      .values({ seq: (latest?.seq ?? 0) + 1, pem, this_update: crl.thisUpdate.toISOString() })
      .execute();
    return pem;
  }

  /**
   * First start: records the certificates of the PKI directory and publishes its trust group and CRL
   * as they are (signed when the PKI was made), so versions continue from there.
   */
  async seed(pki: {
    organisations: readonly X509Certificate[];
    intermediates: readonly X509Certificate[];
    trustGroupJws: FlattenedJWS;
    trustGroup: TrustGroup;
    crlPem?: string;
  }): Promise<void> {
    const known = await this.db.selectFrom('certificates').select('serial').executeTakeFirst();
    if (known) return;
    for (const cert of [...pki.organisations, ...pki.intermediates]) {
      const tp = await thumbprint(cert);
      const m = pki.trustGroup.members.find((x) => x.certificate === tp);
      if (m) await this.importCertificate(cert, m.id, m.name, m.role, m.organization);
    }
    await this.db
      .insertInto('trust_groups')
      .values({
        version: pki.trustGroup.version,
        jws: JSON.stringify(pki.trustGroupJws),
        issued_at: pki.trustGroup.issuedAt,
      })
      .execute();
    if (pki.crlPem)
      await this.db
        .insertInto('crls')
        .values({ seq: 1, pem: pki.crlPem, this_update: this.now().toISOString() })
        .execute();
  }

  async currentTrustGroup(): Promise<FlattenedJWS | undefined> {
    const r = await this.db
      .selectFrom('trust_groups')
      .select('jws')
      .orderBy('version', 'desc')
      .executeTakeFirst();
    return r ? (JSON.parse(r.jws) as FlattenedJWS) : undefined;
  }

  async currentCrl(): Promise<string | undefined> {
    return (
      await this.db.selectFrom('crls').select('pem').orderBy('seq', 'desc').executeTakeFirst()
    )?.pem;
  }
}

export async function buildAuthority(
  deps: AuthorityDeps,
): Promise<{ app: FastifyInstance; authority: Authority }> {
  const authority = new Authority(deps);
  const app = createApp({
    name: 'authority',
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
    ...(deps.https ? { https: deps.https } : {}),
  });
  const audit = deps.audit;
  void app.register(witnessPlugin, { database: deps.database, audit });

  const admin = async (req: FastifyRequest, reply: FastifyReply) => {
    const token = /^Bearer (\S{16,256})$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !(await checkSecret(token, deps.adminTokenHash))) {
      await audit.append({
        event: '110114',
        subtype: 'admin-authentication',
        action: 'E',
        outcome: 4,
        actor: { id: 'unknown-administrator' },
        objects: [],
        details: { route: req.routeOptions.url ?? '' },
      });
      return reply
        .code(401)
        .send({ error: 'unauthorised', message: 'an administrator token is required' });
    }
  };

  app.get('/ca.pem', { schema: { response: { 200: { type: 'string' } } } }, async (_req, reply) =>
    reply.type('application/x-pem-file').send(deps.root.cert.toString('pem') + '\n'),
  );
  app.get(
    '/crl.pem',
    { schema: { response: { 200: { type: 'string' } } } },
    async (_req, reply) => {
      const pem = (await authority.currentCrl()) ?? (await authority.publishCrl());
      return reply.type('application/pkix-crl').send(pem);
    },
  );
  app.get('/trust-group', async (_req, reply) => {
    const jws = await authority.currentTrustGroup();
    if (!jws) throw new HttpError(503, 'not-ready', 'no trust group has been published yet');
    return reply.send(jws);
  });

  app.post(
    '/admin/organisations',
    { preHandler: admin, schema: { body: memberSchema } },
    async (req) => {
      const body = req.body as {
        id: string;
        name: string;
        role: OrgRole;
        domain: string;
        csr: string;
        dnsNames?: string[];
        ipAddresses?: string[];
      };
      const exists = await deps.database.db
        .selectFrom('certificates')
        .select('serial')
        .where('member_id', '=', body.id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (exists)
        throw new HttpError(409, 'exists', `${body.id} already holds an unrevoked certificate`);
      const csr = await checkCsr(body.csr);
      const cert = await issueOrganisation(deps.root, {
        name: body.name,
        role: body.role,
        domain: body.domain,
        publicKey: csr.publicKey,
        encryptionKey: csr.encryptionKey,
        ...(body.dnsNames ? { dnsNames: body.dnsNames } : {}),
        ...(body.ipAddresses ? { ipAddresses: body.ipAddresses } : {}),
      });
      await authority.importCertificate(cert, body.id, body.name, body.role);
      const group = await authority.publishTrustGroup();
      await audit.append({
        event: '110113',
        subtype: 'certificate-issued',
        action: 'C',
        outcome: 0,
        actor: { id: 'administrator' },
        objects: [{ type: 'certificate', id: cert.serialNumber }],
        details: { member: body.id, role: body.role, trustGroupVersion: group.version },
      });
      return {
        certificate: cert.toString('pem'),
        serial: cert.serialNumber,
        trustGroupVersion: group.version,
      };
    },
  );

  app.post(
    '/admin/revocations',
    {
      preHandler: admin,
      schema: {
        body: {
          type: 'object',
          required: ['serial', 'reason'],
          additionalProperties: false,
          properties: {
            serial: { type: 'string', pattern: '^[0-9a-fA-F]{2,40}$' },
            reason: { type: 'string', minLength: 3, maxLength: 200 },
          },
        },
      },
    },
    async (req) => {
      const { serial, reason } = req.body as { serial: string; reason: string };
      const row = await deps.database.db
        .selectFrom('certificates')
        .selectAll()
        .where('serial', '=', serial.toLowerCase())
        .executeTakeFirst();
      if (!row)
        throw new HttpError(404, 'unknown-certificate', `no certificate with serial ${serial}`);
      if (row.revoked_at)
        throw new HttpError(409, 'already-revoked', `${serial} was revoked on ${row.revoked_at}`);
      await deps.database.db
        .updateTable('certificates')
        .set({ revoked_at: (deps.now?.() ?? new Date()).toISOString(), reason })
        .where('serial', '=', row.serial)
        .execute();
      await authority.publishCrl();
      const group = await authority.publishTrustGroup();
      await audit.append({
        event: '110113',
        subtype: 'certificate-revoked',
        action: 'U',
        outcome: 0,
        actor: { id: 'administrator' },
        objects: [{ type: 'certificate', id: row.serial }],
        details: { member: row.member_id, reason, trustGroupVersion: group.version },
      });
      return { revoked: row.serial, trustGroupVersion: group.version };
    },
  );

  app.post(
    '/admin/trust-group/removals',
    {
      preHandler: admin,
      schema: {
        body: {
          type: 'object',
          required: ['member'],
          additionalProperties: false,
          properties: { member: { type: 'string', pattern: '^[a-z][a-z0-9-]{1,62}$' } },
        },
      },
    },
    async (req) => {
      const { member } = req.body as { member: string };
      const r = await deps.database.db
        .updateTable('certificates')
        .set({ admitted: 0 })
        .where('member_id', '=', member)
        .where('admitted', '=', 1)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0)
        throw new HttpError(404, 'unknown-member', `${member} is not in the trust group`);
      const group = await authority.publishTrustGroup();
      await audit.append({
        event: '110113',
        subtype: 'trust-group-removal',
        action: 'U',
        outcome: 0,
        actor: { id: 'administrator' },
        objects: [],
        details: { member, trustGroupVersion: group.version },
      });
      return { trustGroupVersion: group.version, members: group.members.map((m) => m.id) };
    },
  );

  return { app, authority };
}

export { X509Certificate };
