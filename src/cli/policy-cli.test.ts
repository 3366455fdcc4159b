// `ztv policy` as a security officer uses it, as real processes on real files: `check` refuses a role or
// purpose outside the declared vocabularies and a sub-domain lifting an inherited prohibition; `sign`
// writes each file's detached signature with the organisation's key, `check --pki` verifies it and
// refuses a file changed afterwards or signed by another organisation; `explain` denies a free-text
// purpose.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../test/samples.ts';

const BIN = join(REPO_ROOT, 'bin/ztv.js');
let dir: string;
const ztv = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const p = (f: string) => join(dir, f);
const FED = join(REPO_ROOT, 'policies/federation.json');
const PRODUCER = join(REPO_ROOT, 'policies/producer-hospital.json');

/** The producer's file with one change, written to `name`. */
const variant = (name: string, change: (j: { rules: Record<string, unknown>[] }) => void) => {
  const j = JSON.parse(readFileSync(PRODUCER, 'utf8')) as { rules: Record<string, unknown>[] };
  change(j);
  writeFileSync(p(name), JSON.stringify(j, null, 2));
  return p(name);
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-policy-cli-'));
  const r = ztv('pki', 'init', p('pki'));
  expect(r.code, r.err).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ztv policy check', () => {
  it('accepts the demo policies and shows their vocabularies', () => {
    const r = ztv('policy', 'check', FED, PRODUCER);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /# roles: physician, radiologist, nurse, administrative, auditor, attending/,
    );
    expect(r.out).toMatch(/# purposes of use: TREAT, ETREAT, HRESCH, HOPERAT/);
    expect(r.out).toContain('["TREAT", "ETREAT"].contains(context.purpose)');
  });

  it.each([
    [
      'a misspelt role',
      (j: { rules: Record<string, unknown>[] }) => void (j.rules[0]!.role = 'physican'),
      /rule SEARCH: role "physican" is not in the vocabulary of domain/,
    ],
    [
      'a misspelt purpose',
      (j: { rules: Record<string, unknown>[] }) => void (j.rules[0]!.purposes = ['TRAET']),
      /rule SEARCH: purpose "TRAET" is not in the vocabulary of domain/,
    ],
    [
      'a free-text purpose',
      (j: { rules: Record<string, unknown>[] }) =>
        void (j.rules[0]!.purposes = ['insurance-claim']),
      /rule SEARCH: "purposes" must list PurposeOfUse codes/,
    ],
    [
      'an inherited prohibition lifted',
      (j: { rules: Record<string, unknown>[] }) =>
        void j.rules.push({
          id: 'SOD-STATIC',
          type: 'prohibition',
          organization: '*',
          role: 'auditor',
          activity: '*',
          view: '*',
          context: 'delegated',
          description: 'Waive separation of duty here.',
        }),
      /rule SOD-STATIC would replace the prohibition SOD-STATIC of policy:federation/,
    ],
  ])('refuses %s, in one line', (name, change, why) => {
    const r = ztv('policy', 'check', FED, variant(`${name.replace(/ /g, '-')}.json`, change));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(why);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
  });
});

describe('ztv policy sign, then check --pki', () => {
  it('signs each file with its organisation, verifies, and refuses a file changed afterwards or signed by another', () => {
    copyFileSync(FED, p('federation.json'));
    copyFileSync(PRODUCER, p('producer-hospital.json'));
    const officer = (org: string, file: string) =>
      ztv(
        'policy',
        'sign',
        p(file),
        '--key',
        p(`pki/${org}.key.pem`),
        '--cert',
        p(`pki/${org}.pem`),
      );
    expect(officer('authority', 'federation.json').code).toBe(0);
    const s = officer('producer', 'producer-hospital.json');
    expect(s.code, s.err).toBe(0);
    expect(s.out).toContain('producer-hospital.json.jws');
    const ok = ztv(
      'policy',
      'check',
      p('federation.json'),
      p('producer-hospital.json'),
      '--pki',
      p('pki'),
    );
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/producer-hospital\.json: signed by producer/);

    // The consumer hospital signs the producer's file: foreign.
    expect(officer('consumer', 'producer-hospital.json').code).toBe(0);
    const foreign = ztv(
      'policy',
      'check',
      p('federation.json'),
      p('producer-hospital.json'),
      '--pki',
      p('pki'),
    );
    expect(foreign.code).not.toBe(0);
    expect(foreign.err).toMatch(/it is signed by consumer, but producer is accountable for it/);

    // Signed again by the producer, then changed: refused.
    expect(officer('producer', 'producer-hospital.json').code).toBe(0);
    writeFileSync(
      p('producer-hospital.json'),
      readFileSync(p('producer-hospital.json'), 'utf8').replace('"version": 2', '"version": 3'),
    );
    const altered = ztv(
      'policy',
      'check',
      p('federation.json'),
      p('producer-hospital.json'),
      '--pki',
      p('pki'),
    );
    expect(altered.code).not.toBe(0);
    expect(altered.err).toMatch(/altered after it was signed/);
  });
});

describe('ztv policy explain', () => {
  it('denies a free-text purpose, naming the vocabulary', () => {
    writeFileSync(
      p('marketing.json'),
      JSON.stringify({
        principal: { id: 'dr.bob', organization: 'consumer', roles: ['physician'] },
        activity: 'search',
        resource: { kind: 'patient-list' },
        context: { purpose: 'Marketing', time: '2026-11-25T10:00:00Z' },
      }),
    );
    const r = ztv('policy', 'explain', FED, PRODUCER, '--request', p('marketing.json'));
    expect(r.code).toBe(1);
    const d = JSON.parse(r.out) as { decision: string; errors: string[] };
    expect(d.decision).toBe('deny');
    expect(d.errors.join(' ')).toMatch(/purpose of use Marketing is not in the vocabulary/);
  });
});
