// An emergency (break-the-glass) access is told apart from a treatment access, from what was asked
// and from the review obligation the producer's answer carries.
import { describe, expect, it } from 'vitest';
import type { ConsultAnswer } from '../../core/client/federation.ts';
import { openedAccess } from './access-model.ts';

const answer = (obligations: string[]) =>
  ({ decision: { rules: ['X'], obligations } }) as unknown as ConsultAnswer;

describe('openedAccess', () => {
  it('marks a break-the-glass access under review, with its justification', () => {
    const a = openedAccess(answer(['log-request:pre', 'break-glass-review:post']), {
      purpose: 'ETREAT',
      justification: 'Unconscious patient in the emergency room',
    });
    expect(a).toMatchObject({ emergency: true, reviewed: true });
    expect(a.text).toBe(
      'Emergency access (break the glass) — an auditor reviews this access and its justification',
    );
    expect(a.justification).toBe('Unconscious patient in the emergency room');
  });

  it('marks an emergency purpose even when no review was attached', () => {
    const a = openedAccess(answer(['log-request:pre']), { purpose: 'ETREAT', justification: 'x' });
    expect(a).toMatchObject({ emergency: true, reviewed: false });
    expect(a.text).toMatch(/^Emergency access \(break the glass\) — logged/);
  });

  it('does not mark a treatment access', () => {
    const a = openedAccess(answer(['log-request:pre']), { purpose: 'TREAT' });
    expect(a).toMatchObject({ emergency: false, text: 'Access for treatment' });
  });
});
