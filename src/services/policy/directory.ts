/**
 * The hospital's directory, for separation of duty per person (ISO/TS 22600-2: the roles a person
 * holds, not the one a device carries). The consumer hospital answers `GET /directory/:clinician`
 * with a short-lived directory entry it signs with its organisation key: whether the account is
 * active, and every structural role the person holds — the account's, and the role of each device
 * certificate of theirs still in force (a device certified under an earlier role keeps that role until
 * it is revoked or expires). Deciding parties pull the entry (the pull model of attribute authorities)
 * and keep it a short while; a person the directory does not know, or a directory that cannot be
 * reached, fails the request closed.
 */
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { readClinician } from '../../core/pki/extensions.ts';
import { OID } from '../../core/pki/oids.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import {
  issueDirectoryEntry,
  verifyDirectoryEntry,
  type KeyResolver,
} from '../../core/policy/statements.ts';

/** How long a directory entry is valid, and how long a deciding party keeps one. */
export const DIRECTORY_ENTRY_TTL_MS = 5 * 60_000;
export const DIRECTORY_CACHE_MS = 30_000;

/** The consumer tables the directory reads (accounts and their devices). */
export interface DirectoryTables {
  clinicians: { id: string; role: string; active: number };
  devices: { clinician_id: string; pem: string; revoked_at: string | null };
}

/** What the directory says of a person now: active, and every structural role held. */
export async function directoryRoles(
  db: Kysely<DirectoryTables>,
  clinician: string,
  now: number,
): Promise<{ active: boolean; roles: string[] }> {
  const account = await db
    .selectFrom('clinicians')
    .select(['role', 'active'])
    .where('id', '=', clinician)
    .executeTakeFirst();
  if (!account) return { active: false, roles: [] };
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
  return { active: account.active === 1, roles: [...roles].sort() };
}

export interface DirectoryRouteOptions {
  readonly db: Kysely<DirectoryTables>;
  /** The hospital's trust-group member id, and its organisation key (signs the entries). */
  readonly memberId: string;
  readonly signer: SigningKey;
  readonly now?: () => number;
}

/** Registers `GET /directory/:clinician` on the hospital's app. */
export function directoryRoute(app: FastifyInstance, o: DirectoryRouteOptions): void {
  const now = o.now ?? Date.now;
  app.get(
    '/directory/:clinician',
    {
      schema: {
        params: {
          type: 'object',
          required: ['clinician'],
          properties: { clinician: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' } },
        },
      },
    },
    async (req) => {
      const { clinician } = req.params as { clinician: string };
      const t = now();
      const { active, roles } = await directoryRoles(o.db, clinician, t);
      const entry = await issueDirectoryEntry(
        { key: o.signer, kid: o.signer.publicKey.keyIdHex },
        {
          iss: o.memberId,
          sub: clinician,
          active,
          roles,
          nbf: t - 60_000,
          exp: t + DIRECTORY_ENTRY_TTL_MS,
        },
      );
      return { entry };
    },
  );
}

/**
 * The engine's `directory` option over the hospitals' directories: `urls` maps a trust-group member
 * id to its directory's base URL. Entries are verified (signed by that hospital, about that person,
 * unexpired) and kept `DIRECTORY_CACHE_MS`.
 */
export function directoryResolver(
  resolveIssuer: KeyResolver,
  urls: Readonly<Record<string, string>>,
  opts: { readonly fetch?: typeof fetch; readonly now?: () => number } = {},
): (who: {
  readonly id: string;
  readonly organization: string;
}) => Promise<{ active: boolean; roles: readonly string[] }> {
  const f = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { until: number; active: boolean; roles: readonly string[] }>();
  return async (who) => {
    const key = `${who.organization}\0${who.id}`;
    const t = now();
    const hit = cache.get(key);
    if (hit && hit.until > t) return hit;
    const base = urls[who.organization];
    if (!base) throw new Error(`organisation ${who.organization} publishes no directory`);
    const r = await f(`${base}/directory/${encodeURIComponent(who.id)}`).catch((e: Error) => {
      throw new Error(`the directory is unreachable (${e.message})`);
    });
    if (!r.ok) throw new Error(`the directory answered ${r.status}`);
    const { entry } = (await r.json()) as { entry?: unknown };
    if (typeof entry !== 'string') throw new Error('the directory answered no entry');
    const e = await verifyDirectoryEntry(entry, resolveIssuer, who, t);
    const kept = {
      until: Math.min(e.exp, t + DIRECTORY_CACHE_MS),
      active: e.active,
      roles: e.roles,
    };
    cache.set(key, kept);
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return kept;
  };
}
