/**
 * Functional roles: `POST /role-assignments` gives the signed-in clinician the hospital's signed
 * statements (JWS, ES256 by the hospital's organisation key, valid ≤ 8 h) of what it records them
 * doing — attending of a patient, care team, reading radiologist of a study — for the producer's
 * policy to weigh.
 */
import type { FastifyInstance } from 'fastify';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { issueRoleAssignment } from '../../core/policy/statements.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import type { ConsumerTables } from './schema.ts';
import type { SignedIn } from './sign-in.ts';

export interface RolesOptions {
  readonly database: Database<ConsumerTables>;
  /** The hospital's member id in the trust group, and its key: it signs role assignments. */
  readonly memberId: string;
  readonly signer: SigningKey;
  readonly audit: AuditStore;
  readonly clinicianOf: SignedIn;
  readonly now: () => number;
}

export async function rolesPlugin(app: FastifyInstance, deps: RolesOptions): Promise<void> {
  const db = deps.database.db;
  const now = deps.now;

  app.post('/role-assignments', async (req) => {
    const c = await deps.clinicianOf(req);
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
    await deps.audit.append({
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
}
