/**
 * HTTP as the platform's clients see it (fetch only, browser and Node alike): a party that cannot be
 * reached is named (`NetworkFailure`), an error answer becomes an `HttpFailure` with the service's
 * reason and sentence, and `poster` is the JSON POST the session handshake runs on.
 */
import { ZtvError } from '../errors.ts';
import type { Post } from '../session/protocol.ts';

export interface Endpoints {
  readonly consumer: string;
  readonly producer: string;
  readonly cloud: string;
}

export class HttpFailure extends ZtvError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super('bad-input', message);
  }
}

/** A party could not be reached at all (down, wrong address, refused by the browser). */
export class NetworkFailure extends Error {
  constructor(
    readonly party: string,
    readonly url: string,
  ) {
    super(`cannot reach the ${party} at ${url}`);
    this.name = 'NetworkFailure';
  }
}

/**
 * A streamed answer cut before its end (the party died, the connection dropped): which party, what
 * was cut, and how much had arrived — instead of the transport's bare `TypeError: terminated`.
 */
export class StreamCut extends Error {
  constructor(
    readonly party: string,
    readonly what: string,
    readonly received: number,
    readonly bytes: number,
    override readonly cause: unknown,
  ) {
    super(
      `the ${party} cut ${what} after ${received} instance${received === 1 ? '' : 's'} (${(bytes / 1e6).toFixed(1)} MB) had arrived: ${describeCut(cause)}`,
    );
    this.name = 'StreamCut';
  }
}

/** The transport's words for a cut, without URLs or query strings. */
function describeCut(e: unknown): string {
  if (e instanceof NetworkFailure) return `it could not be reached again`;
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? ` (${cause.code})` : '';
  return `${(e as Error)?.message ?? String(e)}${code}`.slice(0, 200);
}

/**
 * Whether a failure while a stream is read is the transport's (the connection cut, the party
 * unreachable) rather than the party's answer or a fault of the data: only those are worth resuming.
 */
export function isCut(e: unknown): boolean {
  if (e instanceof NetworkFailure) return true;
  if (e instanceof ZtvError) return (e.details as { reason?: unknown }).reason === 'truncated';
  if (!(e instanceof TypeError)) return false;
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  return e.message === 'terminated' || (typeof code === 'string' && /^(E|UND_ERR_)/.test(code));
}

const PARTIES: readonly (keyof Endpoints)[] = ['consumer', 'producer', 'cloud'];

/** A fetch that names the party it could not reach instead of the browser's bare TypeError. */
export function reaching(f: typeof fetch, endpoints?: Partial<Endpoints>): typeof fetch {
  return async (input, init) => {
    try {
      return await f(input, init);
    } catch (e) {
      if ((e as Error).name === 'AbortError' || e instanceof NetworkFailure) throw e;
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const party =
        PARTIES.find((p) => endpoints?.[p] && url.startsWith(endpoints[p]!)) ?? 'server';
      throw new NetworkFailure(party, new URL(url).origin);
    }
  };
}

/** The JSON body of an answer; an error status becomes an HttpFailure with the service's words. */
export async function json(r: Response): Promise<unknown> {
  const body = (await r.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!r.ok)
    throw new HttpFailure(
      r.status,
      body.error ?? 'error',
      body.message ?? `${r.url} answered ${r.status}`,
    );
  return body;
}

export const poster =
  (base: string, f: typeof fetch = fetch): Post =>
  async (path, body) =>
    json(
      await reaching(f)(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }),
    );
