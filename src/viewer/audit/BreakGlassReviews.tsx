/**
 * Break-glass accesses awaiting review, from the producer: who broke the glass, when, for which
 * patient (pseudonym) and study (reference), the rule that allowed it and the clinician's typed
 * justification (shown to the reviewer; the producer logs it whole with its decision). The auditor
 * records the outcome — justified or unjustified, once, after a confirmation — which discharges the
 * post-obligation; a refusal (the policy's rule, an access already reviewed) is shown with the
 * producer's reason.
 */
import { useCallback, useEffect, useState } from 'react';
import type { AuditorClient, PendingReview } from '../../core/audit/client.ts';
import { describeProblem, type Problem } from '../app/problems.ts';
import { ProblemBox } from '../ui/Problem.tsx';
import {
  REVIEW_OUTCOMES,
  reviewRefusal,
  type ReviewOutcome,
  type ReviewRefusal,
} from './review-model.ts';

type Client = Pick<AuditorClient, 'pendingBreakGlass' | 'review'>;

interface Reviewed {
  readonly ticket: string;
  readonly requester: string;
  readonly review: string;
  readonly reviewer: string;
  readonly reviewedAt: string;
}

export function BreakGlassReviews({ client }: { client: Client }) {
  const [pending, setPending] = useState<readonly PendingReview[]>();
  const [problem, setProblem] = useState<Problem>();
  const [reviewed, setReviewed] = useState<readonly Reviewed[]>([]);

  const load = useCallback(async () => {
    setProblem(undefined);
    try {
      setPending((await client.pendingBreakGlass()).pending);
    } catch (e) {
      setProblem(describeProblem(e, 'start'));
    }
  }, [client]);
  useEffect(() => void load(), [load]);

  return (
    <section className="audit-section" data-testid="break-glass">
      <h2>Break-glass accesses awaiting review</h2>
      <div className="trail-tools">
        <button data-testid="pending-refresh" onClick={() => void load()}>
          Refresh
        </button>
        {pending && (
          <span className="muted" data-testid="pending-count">
            {pending.length} awaiting review
          </span>
        )}
      </div>
      {problem && <ProblemBox problem={problem} />}
      {pending?.length === 0 && <p className="muted">No emergency access awaits review.</p>}
      {pending?.map((p) => (
        <PendingCard
          key={p.tid}
          item={p}
          review={(outcome) => client.review(p.tid, outcome)}
          onReviewed={(r) => {
            setReviewed((rs) => [{ ...r, requester: p.requester }, ...rs]);
            setPending((ps) => ps?.filter((x) => x.tid !== p.tid));
          }}
        />
      ))}
      {reviewed.length > 0 && (
        <>
          <h3>Reviewed now</h3>
          <ul>
            {reviewed.map((r) => (
              <li key={r.ticket} data-testid="reviewed" data-ticket={r.ticket}>
                ticket {r.ticket} of {r.requester}: {r.review}, by {r.reviewer} at {r.reviewedAt}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function PendingCard({
  item,
  review,
  onReviewed,
}: {
  item: PendingReview;
  review: (o: ReviewOutcome) => ReturnType<Client['review']>;
  onReviewed: (r: Omit<Reviewed, 'requester'>) => void;
}) {
  const [armed, setArmed] = useState<ReviewOutcome>();
  const [busy, setBusy] = useState(false);
  const [refusal, setRefusal] = useState<ReviewRefusal>();

  const confirm = async (outcome: ReviewOutcome) => {
    setBusy(true);
    setRefusal(undefined);
    try {
      onReviewed(await review(outcome));
    } catch (e) {
      setRefusal(reviewRefusal(e));
      setArmed(undefined);
      setBusy(false);
    }
  };

  // A refusal by the producer (policy, already reviewed, no such access) is final for this card; a
  // failure to reach it is not, and the outcome can be recorded again.
  const final = refusal !== undefined && refusal.kind !== 'failed';
  return (
    <article className="pending-review" data-testid="pending-row" data-ticket={item.tid}>
      <header>
        <strong>{item.requester} broke the glass</strong>
        <span className="muted">{item.issuedAt}</span>
      </header>
      <dl className="kv">
        <dt>Requester</dt>
        <dd data-testid="pending-requester">
          {item.requester} · {item.hospital}
        </dd>
        <dt>Broke the glass</dt>
        <dd>{item.issuedAt}</dd>
        <dt>Purpose</dt>
        <dd>{item.purpose}</dd>
        <dt>Allowed by</dt>
        <dd>{item.rules.join(', ')}</dd>
        <dt>Justification</dt>
        <dd data-testid="pending-justification">{item.justification}</dd>
        <dt>Patient (pseudonym)</dt>
        <dd>{item.patient}</dd>
        <dt>Study (reference)</dt>
        <dd>{item.study}</dd>
        <dt>Ticket</dt>
        <dd>{item.tid}</dd>
        <dt>Device</dt>
        <dd>{item.device}</dd>
      </dl>
      {refusal && (
        <div className="problem" role="alert" data-testid="review-refusal" data-kind={refusal.kind}>
          <strong>{refusal.title}</strong>
          <span>{refusal.detail}</span>
          {final && <span className="muted"> Refresh the list to see what awaits review.</span>}
        </div>
      )}
      <div className="actions">
        {!armed &&
          !final &&
          REVIEW_OUTCOMES.map((o) => (
            <button key={o} data-testid={`review-${o}`} onClick={() => setArmed(o)}>
              {o === 'justified' ? 'Justified' : 'Unjustified'}…
            </button>
          ))}
        {armed && (
          <>
            <span>
              Record this access as <strong>{armed}</strong>? A review is recorded once.
            </span>
            <button
              className={armed === 'justified' ? 'primary' : 'danger'}
              data-testid="review-confirm"
              disabled={busy}
              onClick={() => void confirm(armed)}
            >
              Record {armed}
            </button>
            <button disabled={busy} onClick={() => setArmed(undefined)}>
              Cancel
            </button>
          </>
        )}
      </div>
    </article>
  );
}
