/** A failure shown to the clinician: what happened, why, and the next step as a button. */
import type { Problem } from '../app/problems.ts';

export function ProblemBox({
  problem,
  detail,
  actions,
}: {
  problem: Problem;
  /** Replaces the problem's own detail (e.g. with advice added). */
  detail?: string;
  actions?: { label: string; run: () => void }[];
}) {
  return (
    <div
      className={`problem ${problem.kind}`}
      role="alert"
      data-testid="problem"
      data-kind={problem.kind}
    >
      <strong>{problem.title}</strong>
      <span>{detail ?? problem.detail}</span>
      {actions && actions.length > 0 && (
        <div className="actions">
          {actions.map((a) => (
            <button key={a.label} onClick={a.run}>
              {a.label}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}
