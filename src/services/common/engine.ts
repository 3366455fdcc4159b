/** The policy engine of a service: the repository's policy files, statements checked against the PKI. */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PolicyEngine } from '../policy/engine.ts';
import { clinicianResolver, issuerResolver } from '../policy/resolvers.ts';
import type { LiveTrust } from './trust.ts';

export const POLICY_DIR =
  process.env.ZTV_POLICIES ?? join(dirname(fileURLToPath(import.meta.url)), '../../../policies');

export async function loadPolicyEngine(trust: LiveTrust, dir = POLICY_DIR): Promise<PolicyEngine> {
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
    holdsRole: async () => false,
    maxDelegationDepth: 2,
  });
}
