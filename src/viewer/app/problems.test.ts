// Every failure a clinician can meet reads as one clear message with the service's own reason and the
// next step: errors as the client really raises them (session refusals, HTTP failures, unreachable
// parties, the pin, the worker's ticket refusal).
import { describe, expect, it } from 'vitest';
import { HttpFailure, NetworkFailure, StreamCut } from '../../core/client/federation.ts';
import { ZtvError } from '../../core/errors.ts';
import { RemoteError } from '../../core/session/protocol.ts';
import { TicketError } from '../study/session.ts';
import { PinError } from '../trust/pin.ts';
import { describeProblem } from './problems.ts';

describe('problems', () => {
  it('names the party that cannot be reached', () => {
    const p = describeProblem(new NetworkFailure('cloud', 'http://127.0.0.1:8443'), 'redeem');
    expect(p).toMatchObject({
      kind: 'network',
      title: 'Cannot reach the cloud provider',
      next: 'retry',
    });
    expect(p.detail).toContain('http://127.0.0.1:8443');
  });

  it('names a cut transfer: the party, and how much had arrived', () => {
    const cut = new StreamCut(
      'cloud',
      'the retrieval',
      37,
      19_400_000,
      new TypeError('terminated'),
    );
    expect(describeProblem(cut, 'retrieve')).toEqual({
      kind: 'network',
      title: 'The transfer from the cloud provider was cut',
      detail:
        'The cloud cut the retrieval after 37 instances (19.4 MB) had arrived: terminated. Try again for the rest while the ticket is valid.',
      next: 'retry',
    });
  });

  it('tells a wrong password from an ended sign-in', () => {
    const bad = new HttpFailure(401, 'unauthenticated', 'unknown user or wrong password');
    expect(describeProblem(bad, 'sign-in')).toMatchObject({
      kind: 'sign-in',
      title: 'Sign-in failed',
    });
    const ended = new HttpFailure(401, 'expired', 'this sign-in has expired; sign in again');
    expect(describeProblem(ended, 'search')).toMatchObject({
      title: 'Your sign-in has ended',
      next: 'sign-in',
    });
  });

  it('says how long to wait when sign-in is throttled, and that a signed-out device must sign in again', () => {
    const paused = new HttpFailure(
      429,
      'locked',
      'this account is locked after 10 failed sign-ins: try again in 15 minutes, or ask the service desk',
    );
    expect(describeProblem(paused, 'sign-in')).toMatchObject({
      title: 'Sign-in paused',
      detail: expect.stringContaining('try again in 15 minutes'),
      next: 'retry',
    });
    const out = new RemoteError(
      403,
      'denied',
      'consultation denied: dr.bob has no live sign-in at consumer (signed out or expired): sign in again',
    );
    expect(describeProblem(out, 'consult')).toMatchObject({
      title: 'Your sign-in has ended',
      next: 'sign-in',
    });
  });

  it("quotes the policy's reason for a denial, and says whose policy", () => {
    const e = new RemoteError(403, 'denied', 'consultation denied: no rule permits it');
    const p = describeProblem(e, 'consult');
    expect(p.kind).toBe('denied');
    expect(p.title).toBe("Access denied by the producer hospital's policy");
    expect(p.detail).toBe('consultation denied: no rule permits it.');
    expect(describeProblem(e, 'redeem').title).toBe("Refused by the cloud provider's policy");
  });

  it('says why images sealed before pixel keys are refused for research, and that asking again will not help', () => {
    const e = new RemoteError(
      409,
      'identity-bound',
      "1 of the 2 images of this study were protected before their pixels had a key of their own: they cannot be released without the patient's identity, which the purpose HRESCH does not allow",
    );
    const p = describeProblem(e, 'consult');
    expect(p.kind).toBe('denied');
    expect(p.title).toBe('These images cannot be released without the patient’s identity');
    expect(p.detail).toMatch(
      /^1 of the 2 images .* does not allow\. The producer hospital can protect/,
    );
    expect(p.next).toBe('none');
  });

  it('recognises an expired ticket at the cloud, at retrieval and in the worker', () => {
    for (const [e, step] of [
      [new RemoteError(403, 'ticket-refused', 'the ticket has expired'), 'redeem'],
      [new RemoteError(403, 'expired', 'the ticket of this redemption has expired'), 'retrieve'],
      [new TicketError('the ticket has expired', 'ticket'), 'keys'],
    ] as const) {
      const p = describeProblem(e, step);
      expect(p.kind).toBe('expired');
      expect(p.next).toBe('request-again');
    }
    // An idle session that expired is not an expired ticket.
    expect(
      describeProblem(new HttpFailure(403, 'expired', 'the session expired'), 'search').kind,
    ).not.toBe('expired');
  });

  it('recognises a replayed ticket, a refused device and a refused root', () => {
    expect(
      describeProblem(
        new RemoteError(403, 'ticket-refused', 'the ticket was already redeemed (replay)'),
        'redeem',
      ).kind,
    ).toBe('replayed');
    expect(
      describeProblem(
        new HttpFailure(
          403,
          'bad-certificate',
          'the client certificate is refused: CN=dev was revoked',
        ),
        'search',
      ),
    ).toMatchObject({ kind: 'device', next: 'enrol' });
    expect(describeProblem(new PinError('the root changed'), 'start')).toMatchObject({
      kind: 'trust',
      next: 'none',
    });
    expect(describeProblem(new PinError('enrolled under another', 'device'), 'start').next).toBe(
      'enrol',
    );
    expect(
      describeProblem(
        new ZtvError('integrity', 'the trust group is not signed by the pinned authority'),
        'start',
      ).kind,
    ).toBe('trust');
  });
});
