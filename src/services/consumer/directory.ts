/**
 * The hospital's directory, for separation of duty per person (ISO/TS 22600-2: the roles a person
 * holds, not the one a device carries): `GET /directory/:clinician` answers a short-lived directory
 * entry the hospital signs with its organisation key — whether the account is active, and every
 * structural role the person holds: the account's, and the role of each device certificate of theirs
 * still in force (a device certified under an earlier role keeps that role until it is revoked or
 * expires) — and whether the person has a live sign-in (a token neither expired nor signed out):
 * a consultation needs one, so signing out ends what the sign-in enabled, whatever devices it
 * enrolled. Deciding parties pull the entry (`services/policy/directory.ts`, the pull model of
 * attribute authorities).
 */
import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import type { Kysely } from 'kysely';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { readClinician } from '../../core/pki/extensions.ts';
import { OID } from '../../core/pki/oids.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import { issueDirectoryEntry } from '../../core/policy/statements.ts';
import { DIRECTORY_ENTRY_TTL_MS } from '../policy/directory.ts';
import type { Database } from '../storage/db.ts';
import type { ConsumerTables } from './schema.ts';

/** What the directory says of a person now: active, every structural role held, signed in. */
export async function directoryRoles(
  db: Kysely<ConsumerTables>,
  clinician: string,
  now: number,
): Promise<{ active: boolean; roles: string[]; signedIn: boolean }> {
  const account = await db
    .selectFrom('clinicians')
    .select(['role', 'active'])
    .where('id', '=', clinician)
    .executeTakeFirst();
  if (!account) return { active: false, roles: [], signedIn: false };
  const roles = new Set([account.role]);
  const devices = await db
    .selectFrom('devices')
    .select(['pem'])
    .where('clinician_id', '=', clinician)
    .where('revoked_at', 'is', null)
    .execute();
  for (const d of devices) {
    const cert = new X509Certificate(d.pem);
    const ext = cert.getExtension(OID.clinicianExtension);
    if (ext && cert.notAfter.getTime() > now) roles.add(readClinician(ext.value).role);
  }
  const live = await db
    .selectFrom('login_tokens')
    .select('token_hash')
    .where('clinician_id', '=', clinician)
    .where('revoked', '=', 0)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return { active: account.active === 1, roles: [...roles].sort(), signedIn: !!live };
}

export interface DirectoryOptions {
  readonly database: Database<ConsumerTables>;
  /** The hospital's trust-group member id, and its organisation key (signs the entries). */
  readonly memberId: string;
  readonly signer: SigningKey;
  readonly now: () => number;
}

const PARAMS = {
  type: 'object',
  required: ['clinician'],
  properties: { clinician: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' } },
} as const;

export async function directoryPlugin(app: FastifyInstance, o: DirectoryOptions): Promise<void> {
  app.get<{ Params: FromSchema<typeof PARAMS> }>(
    '/directory/:clinician',
    { schema: { params: PARAMS } },
    async (req) => {
      const { clinician } = req.params;
      const t = o.now();
      const { active, roles, signedIn } = await directoryRoles(o.database.db, clinician, t);
      const entry = await issueDirectoryEntry(
        { key: o.signer, kid: o.signer.publicKey.keyIdHex },
        {
          iss: o.memberId,
          sub: clinician,
          active,
          roles,
          signedIn,
          nbf: t - 60_000,
          exp: t + DIRECTORY_ENTRY_TTL_MS,
        },
      );
      return { entry };
    },
  );
}
