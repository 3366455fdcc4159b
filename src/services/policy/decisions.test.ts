// The policy model and the engine beyond the decision table (decision-table.test.ts): policies as data
// that can be trusted — inherited prohibitions and obligations that a sub-domain cannot lift, roles and
// purposes only from the declared vocabularies, rules that state their purposes — and obligations
// enforced once each, break-glass justifications that must be words.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../../test/samples.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import { OID } from '../../core/pki/oids.ts';
import { issueRoleAssignment } from '../../core/policy/statements.ts';
import {
  enforce,
  justificationProblem,
  PolicyEngine,
  type AccessRequest,
  type EngineOptions,
} from './engine.ts';

const PD = OID.domainProducer;
const FD = OID.domainFederation;
const DAY = new Date('2026-11-25T10:00:00Z'); // 11:00 in Paris
const NIGHT = new Date('2026-11-25T23:30:00Z'); // 00:30 in Paris
const HOUR = 3600_000;

type Json = Record<string, unknown> & { rules: Record<string, unknown>[] };
const demo = (): [Json, Json] =>
  ['federation.json', 'producer-hospital.json'].map(
    (f) => JSON.parse(readFileSync(join(REPO_ROOT, 'policies', f), 'utf8')) as Json,
  ) as [Json, Json];

let hospital: SigningKey;
let opts: EngineOptions;
let engine: PolicyEngine;

beforeAll(async () => {
  hospital = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  opts = {
    resolveIssuer: async (kid) =>
      kid === hospital.publicKey.keyIdHex
        ? {
            id: 'consumer',
            key: hospital.publicKey.cryptoKey,
            organization: 'consumer',
            organizationRole: 'consumer',
          }
        : undefined,
    resolveClinician: async () => undefined,
    resolveOrganization: async (id) => (id === 'consumer' ? { role: 'consumer' } : undefined),
    holdsRole: async () => false,
  };
  engine = await PolicyEngine.load(demo(), opts);
});

const attending = (patient = 'P1') =>
  issueRoleAssignment(
    { key: hospital, kid: hospital.publicKey.keyIdHex },
    {
      iss: 'consumer',
      sub: 'dr.bob',
      role: 'attending',
      patient,
      nbf: DAY.getTime() - HOUR,
      exp: DAY.getTime() + 24 * HOUR,
    },
  );

const bob = (over: Partial<AccessRequest> = {}): AccessRequest => ({
  principal: { id: 'dr.bob', organization: 'consumer', roles: ['physician'] },
  activity: 'consult',
  resource: { kind: 'study', patient: 'P1', study: 'S1' },
  context: { purpose: 'TREAT', time: DAY },
  ...over,
});

const load = (files: unknown[]) => PolicyEngine.load(files, opts);

describe('inheritance: the enclosing domain constrains the ones inside it', () => {
  it('the producer domain has the federation rules and vocabularies', async () => {
    expect(Object.keys(engine.compiled(PD).access)).toEqual(
      expect.arrayContaining(['SOD-STATIC', 'SOD-DYNAMIC', 'NO-MARKETING', 'ATTENDING']),
    );
    expect([...engine.purposes(PD).keys()]).toEqual(
      expect.arrayContaining(['TREAT', 'ETREAT', 'HRESCH', 'HOPERAT']),
    );
    expect(engine.roles(PD).get('attending')).toMatchObject({
      kind: 'functional',
      heldBy: ['physician'],
    });
  });

  it('a sub-domain may replace an inherited permission (same id, same type)', async () => {
    const [fed, producer] = demo();
    const redeem = fed.rules.find((r) => r.id === 'CLOUD-REDEEM')!;
    producer.rules.push({
      ...redeem,
      purposes: ['TREAT'],
      description: 'Refined: treatment only.',
    });
    const refined = await load([fed, producer]);
    expect(refined.compiled(PD).access['CLOUD-REDEEM']).toContain('["TREAT"].contains');
    expect(refined.compiled(FD).access['CLOUD-REDEEM']).toContain('"HRESCH"');
  });

  it.each([
    ['SOD-DYNAMIC', 'prohibition', { context: 'delegated' }],
    ['NO-MARKETING', 'prohibition', { type: 'permission', purposes: ['HMARKT'] }],
    ['SOD-STATIC', 'prohibition', { role: 'nurse' }],
    ['CLOUD-LOG', 'obligation', { activity: 'redeem' }],
  ] as const)(
    'a sub-domain cannot lift or change the inherited %s (%s)',
    async (id, type, change) => {
      const [fed, producer] = demo();
      producer.rules.push({
        ...fed.rules.find((r) => r.id === id)!,
        ...change,
        description: 'A sub-domain trying to lift a rule of its parent.',
      });
      await expect(load([fed, producer])).rejects.toThrow(
        new RegExp(`rule ${id} would replace the ${type} ${id} of policy:federation`),
      );
    },
  );

  it('a sub-domain cannot redefine an inherited role or purpose', async () => {
    const [fed, producer] = demo();
    producer.roles = { attending: { kind: 'functional', scope: 'patient', heldBy: ['nurse'] } };
    await expect(load([fed, producer])).rejects.toThrow(
      /role attending is already declared by policy:federation; a sub-domain cannot redefine it/,
    );
    const [fed2, producer2] = demo();
    producer2.purposes = { TREAT: { display: 'anything', identity: true } };
    await expect(load([fed2, producer2])).rejects.toThrow(/purpose TREAT is already declared/);
  });
});

describe('roles and purposes come from the declared vocabularies', () => {
  const withRule = async (change: Record<string, unknown>) => {
    const [fed, producer] = demo();
    Object.assign(
      producer.rules.find((r) => r.id === 'ATTENDING')!,
      change,
    );
    return load([fed, producer]);
  };

  it('a misspelt role is refused', async () => {
    await expect(withRule({ role: 'physican' })).rejects.toThrow(
      /rule ATTENDING: role "physican" is not in the vocabulary/,
    );
  });

  it('a misspelt purpose is refused', async () => {
    await expect(withRule({ purposes: ['TRAET'] })).rejects.toThrow(
      /rule ATTENDING: purpose "TRAET" is not in the vocabulary/,
    );
    await expect(withRule({ purposes: ['treatment'] })).rejects.toThrow(
      /"purposes" must list PurposeOfUse codes/,
    );
  });

  it('a permission states its purposes', async () => {
    const [fed, producer] = demo();
    delete producer.rules.find((r) => r.id === 'ATTENDING')!.purposes;
    await expect(load([fed, producer])).rejects.toThrow(
      /rule ATTENDING: a permission states the purposes of use it serves/,
    );
  });

  it('a vocabulary declares HL7 v3 PurposeOfUse codes only', async () => {
    const [fed, producer] = demo();
    (fed.purposes as Record<string, unknown>).MARKETING = { display: 'marketing', identity: false };
    await expect(load([fed, producer])).rejects.toThrow(
      /purpose MARKETING: is not an HL7 v3 PurposeOfUse code/,
    );
  });

  it('a functional role is held by structural roles of the vocabulary', async () => {
    const [fed, producer] = demo();
    (fed.roles as Record<string, Record<string, unknown>>).attending!.heldBy = ['physicians'];
    await expect(load([fed, producer])).rejects.toThrow(
      /role attending may be held by physicians, which is not a structural role/,
    );
  });

  it('each purpose says whether it may disclose who the patient is (de-identified purposes)', () => {
    const p = engine.purposes(PD);
    expect(p.get('TREAT')?.identity).toBe(true);
    expect(p.get('HRESCH')?.identity).toBe(false);
    expect(p.get('ETREAT')).toMatchObject({ identity: true, emergency: true });
  });

  it('a policy file names its authority as a trust-group member, not free text', async () => {
    const [fed, producer] = demo();
    producer.authority = 'Saint-Louis Producer Hospital, information security officer';
    await expect(load([fed, producer])).rejects.toThrow(/"authority" must be \{ organization/);
  });
});

describe('obligations are enforced, each once', () => {
  it('carries out pre-obligations and returns post-obligations as pending', async () => {
    const d = await engine.decide(
      PD,
      bob({
        context: {
          purpose: 'ETREAT',
          time: NIGHT,
          emergencyJustification: 'unconscious patient, suspected intracranial bleed',
        },
      }),
    );
    const done: string[] = [];
    const e = await enforce(d, { 'log-request': async () => void done.push('logged') });
    expect(e.decision.decision).toBe('allow');
    expect(e.fulfilled).toEqual(['log-request']);
    expect(e.pending).toEqual(['break-glass-review']);
    expect(done).toEqual(['logged']);
  });

  it('two permitting rules asking for the same obligation make one', async () => {
    const d = await engine.decide(
      PD,
      bob({
        context: {
          purpose: 'ETREAT',
          time: DAY,
          emergencyJustification: 'unconscious patient, suspected intracranial bleed',
        },
        roleAssignments: [await attending()],
      }),
    );
    expect(d.rules).toEqual(['ATTENDING', 'BREAK-GLASS']);
    expect(d.obligations.map((o) => `${o.id}:${o.timing}`)).toEqual([
      'log-request:pre',
      'break-glass-review:post',
    ]);
  });

  it('an obligation that cannot be met turns the decision into a deny', async () => {
    const d = await engine.decide(FD, bob({ activity: 'redeem', resource: { kind: 'image' } }));
    const failed = await enforce(d, {
      'insert-trace': async () => {
        throw new Error('the stored image is damaged');
      },
    });
    expect(failed.decision.decision).toBe('deny');
    expect(failed.decision.errors[0]).toMatch(
      /obligation insert-trace \(rule CLOUD-REDEEM\) could not be met: the stored image is damaged/,
    );
    expect((await enforce(d, {})).decision.decision).toBe('deny');
  });
});

describe('the engine without the services around it', () => {
  it('fails closed on a missing requester or an organisation outside the trust group', async () => {
    const ok = await engine.decide(PD, bob({ roleAssignments: [await attending()] }));
    expect(ok.decision).toBe('allow');
    for (const principal of [
      { id: '', organization: 'consumer', roles: ['physician'] },
      { id: 'dr.bob', organization: '', roles: ['physician'] },
      { id: 'dr.bob', organization: 'consumer', roles: [] },
      { id: 'dr.bob', organization: 'consumer', roles: ['surgeon'] },
      { id: 'dr.bob', organization: 'elsewhere', roles: ['physician'] },
    ]) {
      const d = await engine.decide(PD, bob({ principal, roleAssignments: [await attending()] }));
      expect(d.decision, JSON.stringify(principal)).toBe('deny');
      expect(d.errors.length, JSON.stringify(principal)).toBeGreaterThan(0);
    }
  });

  it('without a directory, static separation of duty still sees the roles of the request', async () => {
    const d = await engine.decide(
      PD,
      bob({
        activity: 'read-audit',
        resource: { kind: 'audit-trail' },
        principal: { id: 'dr.bob', organization: 'consumer', roles: ['auditor', 'physician'] },
        context: { purpose: 'HOPERAT', time: DAY },
      }),
    );
    expect(d).toMatchObject({ decision: 'deny', rules: ['SOD-STATIC'] });
  });

  it('refuses a policy set whose rules do not type-check', async () => {
    const [fed] = demo();
    fed.rules[0]!.activity = 'teleport';
    await expect(load([fed])).rejects.toThrow(
      /activity "teleport" is not one of the policy's operations/,
    );
  });
});

describe('a break-glass justification is words, not a length', () => {
  it.each([
    ['x'.repeat(20), false],
    ['urgent urgent urgent urgent urgent', false],
    ['aa aa bb bb cc cc dd dd ee', false], // five "words" of five letters
    ['unconscious patient, suspected intracranial bleed', true],
    ['patient inconscient, hémorragie intracrânienne suspectée', true],
    ['CT now!! pt down', false],
    ['patient deteriorating, doctor on the way', true],
  ] as const)('%j → %s', (text, ok) => {
    expect(justificationProblem(text) === undefined).toBe(ok);
  });
});
