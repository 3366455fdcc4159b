/**
 * Concurrent clinicians driving the real protocol against a running federation, for a bounded
 * time: each signs in with its own enrolled device (test/federation.ts) and, round after round,
 * consults the CT study at the producer, opens its key part, redeems the ticket at the cloud,
 * retrieves every instance and opens the first one verified with its image key. Used by the load
 * part of the reliability campaign (`load.ts`) and by its short slice in `npm test`.
 */
import { HttpFailure, NetworkFailure } from '../../src/core/client/http.ts';
import { pkiResolver } from '../../src/core/pki/resolver.ts';
import { openProtected } from '../../src/core/protect/index.ts';
import { RemoteError } from '../../src/core/session/protocol.ts';
import type { TestClinician, TestFederation } from '../../test/federation.ts';

export interface LevelResult {
  readonly clients: number;
  readonly seconds: number;
  readonly rounds: number;
  readonly images: number;
  readonly bytes: number;
  /** Milliseconds per round step, every round. */
  readonly consult: number[];
  readonly redeem: number[];
  readonly first: number[];
  /** Errors by kind: `503` (the party said it is at capacity), or the error's name and status. */
  readonly errors: Map<string, number>;
  /** The first few error messages (no identifiers: the services' sentences). */
  readonly samples: string[];
}

const kindOf = (e: unknown): string => {
  if (e instanceof HttpFailure || e instanceof RemoteError)
    return e.status === 503 ? '503' : `${e.name} ${e.status}`;
  if (e instanceof NetworkFailure) return 'unreachable';
  return (e as Error)?.name ?? 'error';
};

/**
 * Runs `clinicians.length` clients in parallel for `seconds`; a round under way at the end
 * finishes (and counts). A round that fails counts its error and the client starts the next one
 * after a pause of a second (a 503 asks for that).
 */
export async function runLevel(
  t: TestFederation,
  clinicians: readonly TestClinician[],
  seconds: number,
): Promise<LevelResult> {
  const resolver = pkiResolver(await t.trust());
  const end = Date.now() + seconds * 1000;
  const r = {
    clients: clinicians.length,
    seconds,
    rounds: 0,
    images: 0,
    bytes: 0,
    consult: [] as number[],
    redeem: [] as number[],
    first: [] as number[],
    errors: new Map<string, number>(),
    samples: [] as string[],
  };
  const started = performance.now();
  await Promise.all(
    clinicians.map(async (who) => {
      while (Date.now() < end) {
        try {
          let s = performance.now();
          const c = await who.client.consult({
            patient: t.ctPatient,
            purpose: 'TREAT',
            roleAssignments: who.roleAssignments,
          });
          const consult = performance.now() - s;
          const keys = await who.client.openKeys(c.ticket, t.resolveProducer);
          s = performance.now();
          const red = await who.client.redeem(c.ticket);
          const redeem = performance.now() - s;
          s = performance.now();
          let first = 0;
          let n = 0;
          let bytes = 0;
          for await (const got of who.client.retrieve(red.redemption)) {
            if (n === 0) {
              first = performance.now() - s;
              const opened = await openProtected(got.bytes, {
                resolver,
                imageKey: keys.get(got.id)!,
              });
              if (opened.verdict.status !== 'verified')
                throw new Error(`the first instance opened ${opened.verdict.status}`);
            }
            n++;
            bytes += got.bytes.length;
          }
          if (n !== red.images.length)
            throw new Error(`${n} of ${red.images.length} instances arrived`);
          r.rounds++;
          r.images += n;
          r.bytes += bytes;
          r.consult.push(consult);
          r.redeem.push(redeem);
          r.first.push(first);
        } catch (e) {
          const k = kindOf(e);
          r.errors.set(k, (r.errors.get(k) ?? 0) + 1);
          if (r.samples.length < 5) r.samples.push(`${k}: ${(e as Error)?.message ?? e}`);
          await new Promise((w) => setTimeout(w, 1000));
        }
      }
    }),
  );
  return { ...r, seconds: (performance.now() - started) / 1000 };
}
