// A refusal in the request dialog says which attempt and purpose it answers and what may be asked
// for instead, from the sentence the producer's refusal ends with (core/policy/purposes.ts).
import { describe, expect, it } from 'vitest';
import { allowedPurposesSentence } from '../../core/policy/purposes.ts';
import { describeRefusal } from './refusal-model.ts';

const OFFERED = [
  { id: 'treatment', code: 'TREAT', label: 'Treatment' },
  { id: 'research', code: 'HRESCH', label: 'Research' },
  { id: 'emergency', code: 'ETREAT', label: 'Emergency (break the glass)' },
];
const [treat, research, emergency] = OFFERED as [
  (typeof OFFERED)[0],
  (typeof OFFERED)[0],
  (typeof OFFERED)[0],
];

const refused = (codes: string[]) =>
  `consultation denied: no rule permits it; ${allowedPurposesSentence(codes)}`;

describe('describeRefusal', () => {
  it('names the purposes the clinician may ask for instead, by the labels of the dialog', () => {
    const r = describeRefusal(refused(['ETREAT']), treat, 1, OFFERED);
    expect(r.reason).toBe('consultation denied: no rule permits it.');
    expect(r.alternatives.map((p) => p.id)).toEqual(['emergency']);
    expect(r.advice).toBe('You may ask for: Emergency (break the glass).');
  });

  it('says so when no purpose is allowed, and names purposes the dialog does not offer', () => {
    expect(describeRefusal(refused([]), treat, 1, OFFERED).advice).toBe(
      'The policy lets you consult this study for no purpose of use.',
    );
    const r = describeRefusal(refused(['HRESCH', 'COC']), treat, 1, OFFERED);
    expect(r.alternatives.map((p) => p.code)).toEqual(['HRESCH']);
    expect(r.elsewhere).toEqual(['coordination of care']);
    expect(r.advice).toBe('You may ask for: Research, coordination of care.');
  });

  it('a second attempt reads differently from the first', () => {
    const first = describeRefusal(refused(['ETREAT']), treat, 1, OFFERED);
    const second = describeRefusal(refused(['ETREAT']), research, 2, OFFERED);
    expect(first.heading).toBe('Request 1 (Treatment) refused');
    expect(second.heading).toBe('Request 2 (Research) refused');
  });

  it('a refused emergency the policy would allow points at the justification', () => {
    const r = describeRefusal(
      'consultation denied: break-glass needs a typed justification in words; ' +
        allowedPurposesSentence(['ETREAT']),
      emergency,
      3,
      OFFERED,
    );
    expect(r.advice).toBe(
      'The policy would allow emergency (break the glass) with a justification it accepts.',
    );
  });

  it('keeps a refusal without the list as it is', () => {
    const r = describeRefusal('search denied: no rule permits it.', treat, 1, OFFERED);
    expect(r.advice).toBeUndefined();
    expect(r.reason).toBe('search denied: no rule permits it.');
  });
});
