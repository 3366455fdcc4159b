/**
 * Revocation of delegations before their expiry, by statement id (`jti`): the delegator revokes,
 * through their own device session at the producer, a delegation they signed; the producer's policy
 * engine then refuses every chain with that hop until the delegation would have expired anyway.
 */
import type { Kysely, Migration } from 'kysely';
import type { AuditStore } from '../storage/audit-store.ts';
import { DELEGATION_TYP, type Delegation, type KeyResolver } from '../../core/policy/statements.ts';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { fromUtf8 } from '../../core/bytes.ts';
import { OperationError, type Operation, type OperationContext } from '../common/session.ts';

export interface RevocationTables {
  revoked_statements: {
    jti: string;
    issuer: string;
    organization: string;
    expires_at: number;
    revoked_at: string;
  };
}

export const revocationMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('revoked_statements')
      .addColumn('jti', 'text', (c) => c.primaryKey())
      .addColumn('issuer', 'text', (c) => c.notNull())
      .addColumn('organization', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('revoked_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/** The engine's `isRevoked` option over the table. */
export function revocationCheck(db: Kysely<RevocationTables>): (jti: string) => Promise<boolean> {
  return async (jti) =>
    !!(await db
      .selectFrom('revoked_statements')
      .select('jti')
      .where('jti', '=', jti)
      .executeTakeFirst());
}

export interface RevocationDeps {
  readonly db: Kysely<RevocationTables>;
  readonly audit: AuditStore;
  /** The services' clinician resolver: the delegation's signer, from its x5c chain. */
  readonly resolveClinician: KeyResolver;
  readonly now: () => number;
}

/** The `revoke-delegation` session operation: `{ delegation: <compact JWS> }`. */
export function revocationOperations(deps: RevocationDeps): Record<string, Operation> {
  const revoke = async (body: { delegation: string }, ctx: OperationContext) => {
    const me = ctx.client.attributes.clinicianId;
    const org = ctx.client.attributes.hospital;
    if (ctx.client.attributes.kind !== 'device' || !me || !org)
      throw new OperationError(403, 'denied', 'a delegation is revoked by its delegator’s device');
    let claims: Delegation;
    try {
      const header = decodeProtectedHeader(body.delegation);
      if (header.typ !== DELEGATION_TYP || typeof header.kid !== 'string') throw new Error();
      const signer = await deps.resolveClinician(header.kid, header);
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
    const at = new Date(deps.now()).toISOString();
    const known = await deps.db
      .selectFrom('revoked_statements')
      .select('jti')
      .where('jti', '=', claims.jti)
      .executeTakeFirst();
    if (!known)
      await deps.db
        .insertInto('revoked_statements')
        .values({
          jti: claims.jti,
          issuer: me,
          organization: org,
          expires_at: claims.exp,
          revoked_at: at,
        })
        .execute();
    await deps.audit.append({
      event: '110113',
      subtype: 'delegation-revoked',
      action: 'U',
      outcome: 0,
      actor: { id: me, organisation: org, device: ctx.client.thumbprint },
      objects: [{ type: 'policy', id: claims.jti }],
      details: { role: claims.role, activity: claims.activity, delegatee: claims.sub },
    });
    return { revoked: claims.jti, until: claims.exp };
  };
  return {
    'revoke-delegation': {
      schema: {
        type: 'object',
        required: ['delegation'],
        additionalProperties: false,
        properties: { delegation: { type: 'string', minLength: 20, maxLength: 16384 } },
      },
      handler: revoke as never,
    },
  };
}
