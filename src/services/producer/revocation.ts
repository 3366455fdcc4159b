/**
 * Revocation of delegations before their expiry, the producer hospital's side: the delegator's own
 * device revokes, through its session, a delegation it signed (`revoke-delegation`); the producer
 * keeps the statement id (`jti`) in `revoked_statements`, and its policy engine (`revocationCheck`,
 * the engine's `isRevoked`) refuses every chain with that hop until the delegation would have
 * expired anyway. Each revocation is a record of the audit chain.
 */
import type { FastifyInstance } from 'fastify';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { Kysely } from 'kysely';
import { fromUtf8 } from '../../core/bytes.ts';
import { revokeDelegation } from '../../core/operations/delegation.ts';
import { DELEGATION_TYP, type Delegation, type KeyResolver } from '../../core/policy/statements.ts';
import { OperationError } from '../common/session.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { RevocationTables } from './schema.ts';

/** The engine's `isRevoked` option over the table. */
export function revocationCheck(db: Kysely<RevocationTables>): (jti: string) => Promise<boolean> {
  return async (jti) =>
    !!(await db
      .selectFrom('revoked_statements')
      .select('jti')
      .where('jti', '=', jti)
      .executeTakeFirst());
}

export interface RevocationOptions {
  readonly db: Kysely<RevocationTables>;
  readonly audit: AuditStore;
  /** The services' clinician resolver: the delegation's signer, from its x5c chain. */
  readonly resolveClinician: KeyResolver;
  readonly now?: () => number;
}

/** `revoke-delegation` on the producer's session layer. */
export async function revocationPlugin(app: FastifyInstance, o: RevocationOptions): Promise<void> {
  const now = o.now ?? Date.now;
  app.sessionOperations.handle(revokeDelegation, async (body, ctx) => {
    const me = ctx.client.attributes.clinicianId;
    const org = ctx.client.attributes.hospital;
    if (ctx.client.attributes.kind !== 'device' || !me || !org)
      throw new OperationError(403, 'denied', 'a delegation is revoked by its delegator’s device');
    let claims: Delegation;
    try {
      const header = decodeProtectedHeader(body.delegation);
      if (header.typ !== DELEGATION_TYP || typeof header.kid !== 'string') throw new Error();
      const signer = await o.resolveClinician(header.kid, header);
      if (!signer) throw new Error();
      const v = await compactVerify(body.delegation, signer.key, { algorithms: ['ES256'] });
      claims = JSON.parse(fromUtf8(v.payload)) as Delegation;
      if (claims.iss !== signer.id || claims.iss_org !== signer.organization) throw new Error();
      if (typeof claims.jti !== 'string' || typeof claims.exp !== 'number') throw new Error();
    } catch {
      throw new OperationError(
        400,
        'bad-statement',
        'this is not a delegation signed by a device of the federation',
      );
    }
    if (claims.iss !== me || claims.iss_org !== org)
      throw new OperationError(403, 'denied', 'only the delegator may revoke a delegation');
    const known = await o.db
      .selectFrom('revoked_statements')
      .select('jti')
      .where('jti', '=', claims.jti)
      .executeTakeFirst();
    if (!known)
      await o.db
        .insertInto('revoked_statements')
        .values({
          jti: claims.jti,
          issuer: me,
          organization: org,
          expires_at: claims.exp,
          revoked_at: new Date(now()).toISOString(),
        })
        .execute();
    await o.audit.append({
      event: '110113',
      subtype: 'delegation-revoked',
      action: 'U',
      outcome: 0,
      actor: { id: me, organisation: org, device: ctx.client.thumbprint },
      objects: [{ type: 'policy', id: claims.jti }],
      details: { role: claims.role, activity: claims.activity, delegatee: claims.sub },
    });
    return { revoked: claims.jti, until: claims.exp };
  });
}
