/** The policy engine of a service: the repository's policy files, statements checked against the PKI. */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PolicyEngine } from './engine.ts';
import { clinicianResolver, issuerResolver, type TrustSource } from './resolvers.ts';

export const POLICY_DIR =
  process.env.ZTV_POLICIES ?? join(dirname(fileURLToPath(import.meta.url)), '../../../policies');

export async function loadPolicyEngine(
  trust: TrustSource,
  dir = POLICY_DIR,
): Promise<PolicyEngine> {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown);
  // Parents first: a domain's file after the file of the domain that encloses it.
  files.sort(
    (a, b) =>
      Number(!!(a as { parent?: string }).parent) - Number(!!(b as { parent?: string }).parent),
  );
  return PolicyEngine.load(files, {
    resolveIssuer: issuerResolver(trust),
    resolveClinician: clinicianResolver(trust),
    // What a delegator holds is proven, not looked up: the clinician resolver reports the
    // structural role of the delegator's device certificate (it signs the delegation), and a
    // functional role (attending, care-team, reading-radiologist) needs the delegator's own role
    // assignment presented with the request, in scope for the resource (PolicyEngine.decide). There
    // is no third source of roles here, so nothing is held "natively" beyond those.
    holdsRole: async () => false,
    maxDelegationDepth: 2,
  });
}
