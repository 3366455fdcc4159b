/**
 * The policy engine of a service: the signed policy files of its data directory (each verified
 * against the PKI and the trust group before anything is compiled; an unsigned or foreign file stops
 * the service), statements checked against the PKI, organisations against the current trust group,
 * persons against their hospital's directory.
 */
import { join } from 'node:path';
import { directoryResolver } from './directory.ts';
import { PolicyEngine } from './engine.ts';
import { loadSignedPolicies } from './files.ts';
import {
  clinicianResolver,
  issuerResolver,
  organizationResolver,
  policySignerResolver,
  type TrustSource,
} from './resolvers.ts';

/**
 * Where a service reads its signed policies: ZTV_POLICIES, or `<data>/policies` of the federation's
 * data directory (npm start signs the repository's policies there).
 */
export const policyDir = (dataDir: string, env: NodeJS.ProcessEnv = process.env): string =>
  env.ZTV_POLICIES ?? join(dataDir, 'policies');

export interface PolicyEngineSetup {
  /** The directory of signed policy files (`policyDir`). */
  readonly dir: string;
  /** Trust-group member id → base URL of its directory (the hospitals whose people it confirms). */
  readonly directories: Readonly<Record<string, string>>;
  /** Revoked statements (the producer's revocation table). */
  readonly isRevoked?: (jti: string) => Promise<boolean>;
  readonly fetch?: typeof fetch;
  /** The time (ms) directory entries are checked and kept by; the clock by default. */
  readonly now?: () => number;
}

export async function loadPolicyEngine(
  trust: TrustSource,
  setup: PolicyEngineSetup,
): Promise<PolicyEngine> {
  const files = await loadSignedPolicies(
    setup.dir,
    policySignerResolver(() => trust.view()),
  );
  const resolveIssuer = issuerResolver(trust);
  return PolicyEngine.load(files, {
    resolveIssuer,
    resolveClinician: clinicianResolver(trust),
    resolveOrganization: organizationResolver(trust),
    directory: directoryResolver(resolveIssuer, setup.directories, {
      ...(setup.fetch ? { fetch: setup.fetch } : {}),
      ...(setup.now ? { now: setup.now } : {}),
    }),
    ...(setup.isRevoked ? { isRevoked: setup.isRevoked } : {}),
    // What a delegator holds is proven, not looked up: the clinician resolver reports the
    // structural role of the delegator's device certificate (it signs the delegation), and a
    // functional role (attending, care-team, reading-radiologist) needs the delegator's own role
    // assignment presented with the request, in scope for the resource (PolicyEngine.decide). There
    // is no third source of roles here, so nothing is held "natively" beyond those.
    holdsRole: async () => false,
    maxDelegationDepth: 4,
  });
}
