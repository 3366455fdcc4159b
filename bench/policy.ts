/**
 * Policy decision latency for the demo policy: median and p99 over 10,000 decisions through Cedar
 * (preparsed policy set and schema, request validation on), for a request decided on attributes alone
 * and for one that also verifies a signed role assignment. Run: `npm run bench -- policy`; writes
 * bench/reports/policy.md.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairPem, signingKeyFromPem } from '../src/core/crypto/keys.ts';
import { OID } from '../src/core/pki/oids.ts';
import { issueRoleAssignment } from '../src/core/policy/statements.ts';
import { PolicyEngine, type AccessRequest } from '../src/services/policy/engine.ts';
import { REPO_ROOT } from '../test/samples.ts';
import { machine, median, percentile, writeReport } from './lib.ts';

const N = 10_000;
const hospital = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
const files = ['federation.json', 'producer-hospital.json'].map(
  (f) => JSON.parse(readFileSync(join(REPO_ROOT, 'policies', f), 'utf8')) as unknown,
);
const engine = await PolicyEngine.load(files, {
  resolveIssuer: async (kid) =>
    kid === hospital.publicKey.keyIdHex
      ? { id: 'consumer', key: hospital.publicKey.cryptoKey }
      : undefined,
  resolveClinician: async () => undefined,
  resolveOrganization: async (id) => (id === 'consumer' ? { role: 'consumer' } : undefined),
  holdsRole: async () => false,
});
const now = Date.now();
const assignment = await issueRoleAssignment(
  { key: hospital, kid: hospital.publicKey.keyIdHex },
  {
    iss: 'consumer',
    sub: 'dr.bob',
    role: 'attending',
    patient: 'P1',
    nbf: now - 3600_000,
    exp: now + 86400_000,
  },
);

const breakGlass: AccessRequest = {
  principal: { id: 'dr.bob', organization: 'consumer', roles: ['physician'] },
  activity: 'consult',
  resource: { kind: 'study', patient: 'P1', study: 'S1' },
  context: {
    purpose: 'ETREAT',
    emergencyJustification: 'unconscious patient, suspected intracranial bleed',
  },
};
const attending: AccessRequest = {
  ...breakGlass,
  context: { purpose: 'TREAT' },
  roleAssignments: [assignment],
};

async function measure(
  r: AccessRequest,
): Promise<{ median: number; p99: number; decision: string }> {
  for (let i = 0; i < 500; i++) await engine.decide(OID.domainProducer, r); // warm-up
  const times: number[] = [];
  let decision = '';
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    decision = (await engine.decide(OID.domainProducer, r)).decision;
    times.push((performance.now() - t) * 1000);
  }
  return { median: median(times), p99: percentile(times, 99), decision };
}

const a = await measure(breakGlass);
const b = await measure(attending);
const report = `# Policy decision latency

The demo policy (\`policies/federation.json\` + \`policies/producer-hospital.json\`, ${engine.files.reduce((n, f) => n + f.rules.length, 0)} rules) compiled to
Cedar ${'4.13'} and evaluated in-process with a preparsed policy set and schema, request validation on, ${N.toLocaleString('en')} decisions each.

Machine: ${machine()}

| request | decision | median µs | p99 µs |
| --- | --- | --- | --- |
| break-glass consult (attributes only) | ${a.decision} | ${a.median.toFixed(0)} | ${a.p99.toFixed(0)} |
| attending consult (verifies one ES256 role assignment) | ${b.decision} | ${b.median.toFixed(0)} | ${b.p99.toFixed(0)} |

Each decision includes building the Cedar entities and context, Cedar's evaluation, and (when allowed)
a second evaluation for obligation rules. Rerun: \`npm run bench -- policy\`.
`;
console.log(report);
console.log(`report written to ${await writeReport('policy', report)}`);
