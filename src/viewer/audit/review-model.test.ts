// Why a break-glass review was not recorded, in the producer's words: the policy's rule (SOD-DYNAMIC,
// as the producer answers a requester reviewing their own access: test/audit.test.ts), an access
// already reviewed and by whom, a ticket that was no break-glass, a producer that does not answer.
import { describe, expect, it } from 'vitest';
import { NetworkFailure } from '../../core/client/federation.ts';
import { RemoteError } from '../../core/session/protocol.ts';
import { reviewRefusal } from './review-model.ts';

describe('break-glass review refusals', () => {
  it('shows the policy rule that refused the review', () => {
    const r = reviewRefusal(
      new RemoteError(403, 'denied', 'break-glass-review denied: rule SOD-DYNAMIC'),
    );
    expect(r).toEqual({
      kind: 'policy',
      title: "The producer's policy refuses this review",
      detail: 'Break-glass-review denied: rule SOD-DYNAMIC.',
    });
  });

  it('says who reviewed an access first, and when a ticket was no break-glass', () => {
    const again = reviewRefusal(
      new RemoteError(
        409,
        'conflict',
        'this access was already reviewed (justified by auditor.erin)',
      ),
    );
    expect(again.kind).toBe('already-reviewed');
    expect(again.detail).toBe('This access was already reviewed (justified by auditor.erin).');
    expect(
      reviewRefusal(
        new RemoteError(404, 'unknown-access', 'no break-glass access with this ticket'),
      ).kind,
    ).toBe('not-break-glass');
  });

  it('names the party that did not answer, and lets the review be tried again', () => {
    const r = reviewRefusal(new NetworkFailure('producer', 'http://127.0.0.1:8442'));
    expect(r.kind).toBe('failed');
    expect(r.title).toBe('Cannot reach the producer hospital');
    expect(r.detail).toContain('http://127.0.0.1:8442');
  });
});
