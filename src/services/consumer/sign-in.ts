/**
 * Clinicians' sign-in at their hospital: `POST /login` (scrypt; unknown users and wrong passwords get
 * the same answer in the same time) and `POST /logout`. A sign-in is a random bearer token the
 * database keeps only as a SHA-256; `signedIn` is what the other routes authenticate with.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { randomBytes, toBase64Url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { StructuralRole } from '../../core/pki/oids.ts';
import { HttpError } from '../common/http.ts';
import { checkSecret } from '../common/secrets.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import type { Clinician, ConsumerTables } from './schema.ts';

export const tokenHash = (token: string): string => toHex(sha256(utf8(token)));

const BEARER = /^Bearer ([A-Za-z0-9_-]{43})$/;

/** The clinician a request's sign-in token belongs to; 401 when absent, revoked or expired. */
export type SignedIn = (req: FastifyRequest) => Promise<Clinician>;

export function signedIn(db: Database<ConsumerTables>['db'], now: () => number): SignedIn {
  return async (req) => {
    const token = BEARER.exec(req.headers.authorization ?? '')?.[1];
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
}

export interface SignInOptions {
  readonly database: Database<ConsumerTables>;
  readonly hospitalName: string;
  readonly audit: AuditStore;
  readonly clinicianOf: SignedIn;
  readonly loginTtlMs?: number;
  readonly now: () => number;
}

const LOGIN = {
  type: 'object',
  required: ['user', 'password'],
  additionalProperties: false,
  properties: {
    user: { type: 'string', minLength: 1, maxLength: 64 },
    password: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

/** A hash no password matches, so that an unknown user costs one scrypt like a known one. */
const NO_PASSWORD =
  'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

export async function signInPlugin(app: FastifyInstance, deps: SignInOptions): Promise<void> {
  const db = deps.database.db;
  const audit = deps.audit;

  app.post<{ Body: FromSchema<typeof LOGIN> }>(
    '/login',
    { schema: { body: LOGIN } },
    async (req) => {
      const { user, password } = req.body;
      const row = await db
        .selectFrom('clinicians')
        .selectAll()
        .where('id', '=', user)
        .executeTakeFirst();
      // Always run scrypt, so that unknown users take as long as wrong passwords.
      const ok = (await checkSecret(password, row?.password_hash ?? NO_PASSWORD)) && !!row?.active;
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
          expires_at: deps.now() + (deps.loginTtlMs ?? 8 * 3600_000),
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
    const c = await deps.clinicianOf(req);
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
}
