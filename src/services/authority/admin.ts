/**
 * The authority's administration, for administrators holding the bearer token (stored as an scrypt
 * hash): issue an organisation certificate from a CSR and admit the organisation to the trust group,
 * revoke a certificate (new CRL, new trust group), remove a member. Every action and every failed
 * administrator authentication is appended to the authority's audit chain.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { checkCsr, issueOrganisation, type Issuer } from '../../core/pki/issue.ts';
import { ORG_ROLES } from '../../core/pki/oids.ts';
import { HttpError } from '../common/http.ts';
import { checkSecret } from '../common/secrets.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import type { Authority } from './authority.ts';
import type { AuthorityTables } from './schema.ts';

export interface AdminOptions {
  readonly database: Database<AuthorityTables>;
  readonly authority: Authority;
  readonly root: Issuer;
  readonly audit: AuditStore;
  /** scrypt hash of the administrators' bearer token. */
  readonly adminTokenHash: string;
  readonly now?: () => Date;
}

const MEMBER = {
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

const REVOCATION = {
  type: 'object',
  required: ['serial', 'reason'],
  additionalProperties: false,
  properties: {
    serial: { type: 'string', pattern: '^[0-9a-fA-F]{2,40}$' },
    reason: { type: 'string', minLength: 3, maxLength: 200 },
  },
} as const;

const REMOVAL = {
  type: 'object',
  required: ['member'],
  additionalProperties: false,
  properties: { member: { type: 'string', pattern: '^[a-z][a-z0-9-]{1,62}$' } },
} as const;

export async function adminPlugin(app: FastifyInstance, deps: AdminOptions): Promise<void> {
  const { authority, audit } = deps;
  const db = deps.database.db;

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

  app.post<{ Body: FromSchema<typeof MEMBER> }>(
    '/admin/organisations',
    { preHandler: admin, schema: { body: MEMBER } },
    async (req) => {
      const body = req.body;
      const exists = await db
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

  app.post<{ Body: FromSchema<typeof REVOCATION> }>(
    '/admin/revocations',
    { preHandler: admin, schema: { body: REVOCATION } },
    async (req) => {
      const { serial, reason } = req.body;
      const row = await db
        .selectFrom('certificates')
        .selectAll()
        .where('serial', '=', serial.toLowerCase())
        .executeTakeFirst();
      if (!row)
        throw new HttpError(404, 'unknown-certificate', `no certificate with serial ${serial}`);
      if (row.revoked_at)
        throw new HttpError(409, 'already-revoked', `${serial} was revoked on ${row.revoked_at}`);
      await db
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

  app.post<{ Body: FromSchema<typeof REMOVAL> }>(
    '/admin/trust-group/removals',
    { preHandler: admin, schema: { body: REMOVAL } },
    async (req) => {
      const { member } = req.body;
      const r = await db
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
}
