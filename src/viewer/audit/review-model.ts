/**
 * Break-glass reviews as the auditor meets them: the outcomes a review may record, and why the producer
 * refused one — the policy (its rule, e.g. SOD-DYNAMIC: no one reviews their own emergency access), an
 * access already reviewed (by whom), a ticket that was no break-glass — in the producer's own words.
 * Pure: tested without a browser.
 */
import { NetworkFailure } from '../../core/client/federation.ts';
import { RemoteError } from '../../core/session/protocol.ts';
import { describeProblem } from '../app/problems.ts';

export type ReviewOutcome = 'justified' | 'unjustified';
export const REVIEW_OUTCOMES: readonly ReviewOutcome[] = ['justified', 'unjustified'];

export interface ReviewRefusal {
  readonly kind: 'policy' | 'already-reviewed' | 'not-break-glass' | 'failed';
  readonly title: string;
  readonly detail: string;
}

/** The producer's reason as a sentence: capitalised, one full stop. */
const sentence = (m: string): string => {
  const t = m.trim().replace(/[.\s]+$/, '');
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}.`;
};

export function reviewRefusal(e: unknown): ReviewRefusal {
  if (e instanceof RemoteError) {
    if (e.status === 403)
      return {
        kind: 'policy',
        title: "The producer's policy refuses this review",
        detail: sentence(e.message),
      };
    if (e.status === 409)
      return { kind: 'already-reviewed', title: 'Already reviewed', detail: sentence(e.message) };
    if (e.status === 404)
      return {
        kind: 'not-break-glass',
        title: 'No break-glass access with this ticket',
        detail: sentence(e.message),
      };
  }
  const p = describeProblem(e, 'start');
  return {
    kind: 'failed',
    title: e instanceof NetworkFailure ? p.title : 'The review was not recorded',
    detail: p.detail,
  };
}
