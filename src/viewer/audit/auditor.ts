/**
 * The auditor's client in the browser: an `AuditorClient` over this device's non-extractable keys and
 * the pinned trust of the sign-in, with a fetch that names the party it cannot reach; and the trail the
 * view shows — the merged trail of a selection, then each party's whole chain fetched and verified here
 * with its certified key, so that a break is found by this browser rather than taken from the service.
 */
import { AuditorClient, type AuditedParty, type MergedFilter } from '../../core/audit/client.ts';
import type { PartyTrail } from '../../core/audit/trail.ts';
import type { ChainReport } from '../../core/audit/verify.ts';
import { NetworkFailure, type Endpoints } from '../../core/client/federation.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import { trailView, type OrganisationNames, type TrailView } from './trail-model.ts';

const PARTIES: readonly AuditedParty[] = ['producer', 'cloud', 'consumer'];

/** A fetch whose network failures say which party did not answer (not the browser's bare TypeError). */
export function namingFetch(endpoints: Endpoints, f: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    try {
      return await f(input, init);
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const party = PARTIES.find((p) => url.startsWith(endpoints[p])) ?? 'server';
      throw new NetworkFailure(party, new URL(url).origin);
    }
  };
}

export interface AuditorDevice {
  readonly signing: CryptoKeyPair;
  readonly chain: readonly string[];
}

export function openAuditor(
  endpoints: Endpoints,
  device: AuditorDevice,
  trust: PkiView,
  f: typeof fetch = fetch,
): AuditorClient {
  return new AuditorClient(
    { producer: endpoints.producer, cloud: endpoints.cloud, consumer: endpoints.consumer },
    { signing: device.signing, chain: [...device.chain] },
    () => trust,
    namingFetch(endpoints, f),
  );
}

export interface VerifiedTrail {
  readonly view: TrailView;
  readonly trails: readonly PartyTrail[];
  /** This browser's verification of each party's whole chain. */
  readonly local: readonly ChainReport[];
}

/**
 * The merged trail of a selection, with every party it spans verified here: its whole chain fetched
 * and checked (links, hashes, checkpoint signatures with the party's certificate from the PKI).
 */
export async function verifiedTrail(
  client: Pick<AuditorClient, 'mergedTrail' | 'verifyChain'>,
  filter: MergedFilter,
  names?: OrganisationNames,
): Promise<VerifiedTrail> {
  const merged = await client.mergedTrail(filter);
  // Every party's chain, not only those with records in the selection: a break anywhere is shown.
  const local: ChainReport[] = [];
  for (const p of PARTIES) local.push((await client.verifyChain(p)).local);
  return { view: trailView(merged, local, names), trails: merged.trails, local };
}
