// Failing closed on evaluation errors. Cedar skips a policy that errors at run time: a prohibition
// that errors lets the access through (the prototype's pitfall, ../shared/notes/policy-engine.md).
// Strict validation cannot rule this out — Long overflow type-checks — so here the compiler is made
// to emit, for two demo rules, a condition that overflows at run time, and the real engine, on real
// Cedar, must turn each such error into a deny that names the rule.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { REPO_ROOT } from '../../../test/samples.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import { cedarSchema } from '../../core/policy/compile.ts';
import type * as Compile from '../../core/policy/compile.ts';
import { checkPolicyFile } from '../../core/policy/model.ts';
import { OID } from '../../core/pki/oids.ts';
import { issueRoleAssignment } from '../../core/policy/statements.ts';
import { PolicyEngine, type AccessRequest } from './engine.ts';

/**
 * Rules whose compiled condition gets an overflowing term, in one domain: `or` for a prohibition,
 * `and` for a rule that otherwise applies.
 */
const SABOTAGE = vi.hoisted(
  () =>
    new Map<string, { op: '||' | '&&'; domain: string }>([
      // A prohibition, in the producer's domain: errors whenever the purpose is not HMARKT.
      ['NO-MARKETING', { op: '||', domain: '1.3.6.1.4.1.32473.71.2.1' }],
      // An obligation rule of the cloud: errors whenever it applies (images).
      ['CLOUD-LOG', { op: '&&', domain: '1.3.6.1.4.1.32473.71.2' }],
    ]),
);
const OVERFLOW = 'context.hour + 9223372036854775807 > 0'; // Long overflow for any hour ≥ 1

vi.mock('../../core/policy/compile.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof Compile>();
  const sabotage = (domain: string, set: Record<string, string>): Record<string, string> =>
    Object.fromEntries(
      Object.entries(set).map(([id, text]) => {
        const s = SABOTAGE.get(id);
        if (!s || s.domain !== domain) return [id, text];
        const op = s.op;
        const out = text.replace(
          /when \{ (.*) \}(;|\nunless)/s,
          `when { ($1) ${op} ${OVERFLOW} }$2`,
        );
        if (out === text) throw new Error(`could not rewrite rule ${id}`);
        return [id, out];
      }),
    );
  return {
    ...actual,
    compileDomain: (...args: Parameters<typeof actual.compileDomain>) => {
      const c = actual.compileDomain(...args);
      return {
        ...c,
        access: sabotage(c.domain, c.access),
        obligations: sabotage(c.domain, c.obligations),
      };
    },
  };
});

const PD = OID.domainProducer;
const FD = OID.domainFederation;
const DAY = new Date('2026-11-25T10:00:00Z'); // 11:00 in Paris
const files = ['federation.json', 'producer-hospital.json'].map(
  (f) => JSON.parse(readFileSync(join(REPO_ROOT, 'policies', f), 'utf8')) as unknown,
);
let engine: PolicyEngine;
let hospital: SigningKey;

beforeAll(async () => {
  hospital = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  engine = await PolicyEngine.load(files, {
    resolveIssuer: async (kid) =>
      kid === hospital.publicKey.keyIdHex
        ? { id: 'consumer', key: hospital.publicKey.cryptoKey }
        : undefined,
    resolveClinician: async () => undefined,
    resolveOrganization: async (id) => (id === 'consumer' ? { role: 'consumer' } : undefined),
    holdsRole: async () => false,
  });
});

const attending = async (): Promise<AccessRequest> => ({
  principal: { id: 'dr.bob', organization: 'consumer', roles: ['physician'] },
  activity: 'consult',
  resource: { kind: 'study', patient: 'P1', study: 'S1' },
  context: { purpose: 'TREAT', time: DAY },
  roleAssignments: [
    await issueRoleAssignment(
      { key: hospital, kid: hospital.publicKey.keyIdHex },
      {
        iss: 'consumer',
        sub: 'dr.bob',
        role: 'attending',
        patient: 'P1',
        nbf: DAY.getTime() - 3600_000,
        exp: DAY.getTime() + 3600_000,
      },
    ),
  ],
});

describe('a Cedar evaluation error is a deny', () => {
  it('control: the sabotaged rules type-check, and Cedar alone allows despite the error', () => {
    const policies = engine.compiled(PD).access;
    expect(policies['NO-MARKETING']).toContain(OVERFLOW);
    const schema = cedarSchema(files.map((f, i) => checkPolicyFile(f, `file ${i}`)));
    const v = cedar.validate({
      schema,
      policies: { staticPolicies: policies },
      validationSettings: { mode: 'strict' },
    });
    expect(v.type === 'success' && v.validationErrors).toEqual([]);
    const answer = cedar.isAuthorized({
      principal: { type: 'User', id: 'dr.bob' },
      action: { type: 'Action', id: 'consult' },
      resource: { type: 'Resource', id: 'target' },
      context: {
        treatment: true,
        purpose: 'TREAT',
        hour: 11,
        workingStart: 7,
        workingEnd: 20,
        emergency: false,
        traceInserted: false,
        delegated: false,
      },
      schema,
      validateRequest: true,
      policies: { staticPolicies: policies },
      entities: [
        {
          uid: { type: 'User', id: 'dr.bob' },
          attrs: { id: 'dr.bob', organization: 'consumer', held: ['physician'] },
          parents: [
            { type: 'Role', id: 'physician' },
            { type: 'Role', id: 'attending' },
          ],
        },
        { uid: { type: 'Role', id: 'physician' }, attrs: {}, parents: [] },
        { uid: { type: 'Role', id: 'attending' }, attrs: {}, parents: [] },
        {
          uid: { type: 'Resource', id: 'target' },
          attrs: { kind: 'study', requester: '' },
          parents: [],
        },
      ],
    });
    expect(answer.type).toBe('success');
    if (answer.type !== 'success') return;
    // The pitfall itself: the prohibition errored, was skipped, and the permission won.
    expect(answer.response.decision).toBe('allow');
    expect(answer.response.diagnostics.reason).toEqual(['ATTENDING']);
    expect(answer.response.diagnostics.errors.map((e) => e.policyId)).toEqual(['NO-MARKETING']);
  });

  it('an access rule that errors turns the decision into a deny naming the rule', async () => {
    const d = await engine.decide(PD, await attending());
    expect(d.decision).toBe('deny');
    expect(d.obligations).toEqual([]);
    expect(d.errors).toHaveLength(1);
    expect(d.errors[0]).toMatch(/^rule NO-MARKETING: integer overflow/);
  });

  it('an obligation rule that errors turns an allowed access into a deny', async () => {
    const d = await engine.decide(FD, {
      principal: { id: 'dr.bob', organization: 'consumer', roles: ['physician'] },
      activity: 'release',
      resource: { kind: 'image' },
      context: { purpose: 'TREAT', time: DAY, traceInserted: true },
    });
    expect(d.decision).toBe('deny');
    expect(d.rules).toEqual(['CLOUD-RELEASE']); // access alone would be allowed
    expect(d.obligations).toEqual([]);
    expect(d.errors).toEqual(['the obligations of this access could not be determined']);
  });

  it('where no sabotaged condition is reached, the same engine allows (control)', async () => {
    // Redemption at the cloud: CLOUD-LOG is scoped to release, so its condition is never evaluated.
    const d = await engine.decide(FD, {
      principal: { id: 'dr.bob', organization: 'consumer', roles: ['physician'] },
      activity: 'redeem',
      resource: { kind: 'image' },
      context: { purpose: 'TREAT', time: DAY },
    });
    expect(d.errors).toEqual([]);
    expect(d.decision).toBe('allow');
    expect(d.rules).toEqual(['CLOUD-REDEEM']);
    // And a prohibition that applies before reaching the overflow still decides as written.
    const m = await engine.decide(PD, {
      ...(await attending()),
      context: { purpose: 'HMARKT', time: DAY },
    });
    expect(m).toMatchObject({ decision: 'deny', rules: ['NO-MARKETING'], errors: [] });
  });
});
