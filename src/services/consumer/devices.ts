/**
 * Device enrollment at the clinician's hospital: `POST /devices` certifies a browser's CSR with the
 * hospital's device CA — identity and structural role from the hospital's records of the signed-in
 * clinician, never from the CSR — and `POST /devices/revocations` revokes one of the clinician's own
 * devices, publishing a new device CRL (`GET /crl.pem`), which services then refuse sessions by.
 */
import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { createCrl, crlPem, issueDeviceFromCsr, type Issuer } from '../../core/pki/issue.ts';
import { thumbprint } from '../../core/pki/validate.ts';
import { HttpError } from '../common/http.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import type { ConsumerTables } from './schema.ts';
import type { SignedIn } from './sign-in.ts';

export interface DevicesOptions {
  readonly database: Database<ConsumerTables>;
  readonly hospitalName: string;
  readonly deviceCa: Issuer;
  readonly audit: AuditStore;
  readonly clinicianOf: SignedIn;
  readonly now: () => number;
}

const ENROLL = {
  type: 'object',
  required: ['csr'],
  additionalProperties: false,
  properties: { csr: { type: 'string', minLength: 100, maxLength: 8192 } },
} as const;

const REVOKE = {
  type: 'object',
  required: ['serial'],
  additionalProperties: false,
  properties: { serial: { type: 'string', pattern: '^[0-9a-f]{2,40}$' } },
} as const;

export async function devicesPlugin(app: FastifyInstance, deps: DevicesOptions): Promise<void> {
  const db = deps.database.db;
  const audit = deps.audit;

  app.post<{ Body: FromSchema<typeof ENROLL> }>(
    '/devices',
    { schema: { body: ENROLL } },
    async (req) => {
      const c = await deps.clinicianOf(req);
      const cert = await issueDeviceFromCsr(
        deps.deviceCa,
        req.body.csr,
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

  const publishDeviceCrl = async (): Promise<string> => {
    const revoked = await db
      .selectFrom('devices')
      .select(['serial', 'revoked_at'])
      .where('revoked_at', 'is not', null)
      .execute();
    const crl = await createCrl(
      deps.deviceCa,
      revoked.map((r) => ({ serialNumber: r.serial, date: new Date(r.revoked_at!) })),
      new Date(deps.now()),
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

  app.post<{ Body: FromSchema<typeof REVOKE> }>(
    '/devices/revocations',
    { schema: { body: REVOKE } },
    async (req) => {
      const c = await deps.clinicianOf(req);
      const { serial } = req.body;
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
          .set({ revoked_at: new Date(deps.now()).toISOString() })
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

  app.get('/crl.pem', async (_req, reply) => {
    const pem =
      (await db.selectFrom('device_crls').select('pem').orderBy('seq', 'desc').executeTakeFirst())
        ?.pem ?? (await publishDeviceCrl());
    return reply.type('application/pkix-crl').send(pem);
  });
}
