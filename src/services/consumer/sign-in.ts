/**
 * Clinicians' sign-in at their hospital: `POST /login` (scrypt; unknown users and wrong passwords get
 * the same answer in the same time) and `POST /logout`. A sign-in is a random bearer token the
 * database keeps only as a SHA-256; `signedIn` is what the other routes authenticate with. Failed
 * sign-ins are throttled per account and per address (`throttle.ts`: growing delays, then a
 * temporary lockout, answered 429 with Retry-After before any password is checked) and logged naming
 * the account they targeted. Sign-out ends what the sign-in enabled: the hospital's directory then
 * says the person has no live sign-in, and deciding parties refuse their consultations
 * (`directory.ts`, `services/policy/engine.ts`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { randomBytes, toBase64Url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { StructuralRole } from '../../core/pki/oids.ts';
import { HttpError } from '../common/http.ts';
import {
  ACCOUNT_RULE,
  ADDRESS_RULE,
  Throttle,
  type Refusal,
  type ThrottleRule,
} from './throttle.ts';
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
  /** Throttling rules (ACCOUNT_RULE, ADDRESS_RULE by default). */
  readonly throttle?: { readonly account?: ThrottleRule; readonly address?: ThrottleRule };
}

/** The sentence of a throttled attempt: what to do, and when. */
function throttledMessage(r: Refusal, what: 'account' | 'address'): string {
  const s = Math.ceil(r.retryAfterMs / 1000);
  const when = s >= 120 ? `${Math.ceil(s / 60)} minutes` : `${s} seconds`;
  const whose = what === 'account' ? 'this account' : 'this computer';
  return r.locked
    ? `${whose} is locked after ${r.failures} failed sign-ins: try again in ${when}, or ask the service desk`
    : `too many failed sign-ins for ${whose}: wait ${when} before trying again`;
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

  const accounts = new Throttle(deps.throttle?.account ?? ACCOUNT_RULE);
  const addresses = new Throttle(deps.throttle?.address ?? ADDRESS_RULE);

  app.post<{ Body: FromSchema<typeof LOGIN> }>(
    '/login',
    { bodyLimit: 4096, schema: { body: LOGIN } },
    async (req, reply) => {
      const { user, password } = req.body;
      const t = deps.now();
      const row = await db
        .selectFrom('clinicians')
        .selectAll()
        .where('id', '=', user)
        .executeTakeFirst();
      // The account is named in the log when it exists (never a string typed for an unknown one:
      // it may be a password typed in the wrong field).
      const actor = { id: row ? user : 'unknown' };
      // Throttled before any password is checked: a locked account stays locked to the right one.
      const account = user.toLowerCase();
      const byAccount = accounts.check(account, t);
      const byAddress = byAccount ? undefined : addresses.check(req.ip, t);
      const refusal = byAccount
        ? { r: byAccount, what: 'account' as const }
        : byAddress && { r: byAddress, what: 'address' as const };
      if (refusal) {
        await audit.append({
          event: '110114',
          subtype: 'login-throttled',
          action: 'E',
          outcome: 4,
          actor,
          objects: [],
          details: {
            by: refusal.what,
            locked: refusal.r.locked,
            failures: refusal.r.failures,
            retryAfterSeconds: Math.ceil(refusal.r.retryAfterMs / 1000),
          },
        });
        void reply.header('retry-after', String(Math.ceil(refusal.r.retryAfterMs / 1000)));
        throw new HttpError(
          429,
          refusal.r.locked ? 'locked' : 'throttled',
          throttledMessage(refusal.r, refusal.what),
        );
      }
      // Always run scrypt, so that unknown users take as long as wrong passwords.
      const ok = (await checkSecret(password, row?.password_hash ?? NO_PASSWORD)) && !!row?.active;
      let failures = 0;
      if (ok) {
        accounts.succeeded(account);
        addresses.succeeded(req.ip);
      } else {
        failures = accounts.failed(account, t);
        addresses.failed(req.ip, t);
      }
      await audit.append({
        event: '110114',
        subtype: ok ? 'login' : 'login-failed',
        action: 'E',
        outcome: ok ? 0 : 4,
        actor,
        objects: [],
        details: ok
          ? {}
          : {
              reason: !row ? 'unknown-account' : !row.active ? 'inactive' : 'wrong-password',
              failures,
            },
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
