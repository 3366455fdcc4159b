/**
 * Hospitals' directories as the deciding parties read them, for separation of duty per person
 * (ISO/TS 22600-2: the roles a person holds, not the one a device carries). A hospital answers
 * `GET /directory/:clinician` with a short-lived entry it signs (the consumer's
 * `consumer/directory.ts`): whether the account is active, and every structural role the person
 * holds. Deciding parties pull the entry (the pull model of attribute authorities) and keep it a
 * short while (5 s: a sign-out ends consultations within that); a person the directory does not
 * know, or a directory that cannot be reached, fails the request closed.
 */
import { verifyDirectoryEntry, type KeyResolver } from '../../core/policy/statements.ts';

/** How long a directory entry is valid, and how long a deciding party keeps one. */
export const DIRECTORY_ENTRY_TTL_MS = 5 * 60_000;
export const DIRECTORY_CACHE_MS = 5_000;

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
}) => Promise<{ active: boolean; roles: readonly string[]; signedIn?: boolean }> {
  const f = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const cache = new Map<
    string,
    { until: number; active: boolean; roles: readonly string[]; signedIn?: boolean }
  >();
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
      ...(e.signedIn !== undefined ? { signedIn: e.signedIn } : {}),
    };
    cache.set(key, kept);
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return kept;
  };
}
