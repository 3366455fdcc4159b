/**
 * Asking the producer hospital for a patient's images with a declared purpose of use. An emergency
 * access (break the glass) needs a typed justification of at least 20 characters and is reviewed by an
 * auditor afterwards; the policy's answer — a ticket, or a refusal with its reason — comes back here.
 */
import { useState, type FormEvent } from 'react';
import type { ConsultAnswer } from '../../core/client/federation.ts';
import type { ClinicianSession } from '../app/clinician.ts';
import { describeProblem, type Problem } from '../app/problems.ts';
import { ProblemBox } from './Problem.tsx';
import type { Asked } from './access-model.ts';
import { describeRefusal, type Refusal } from './refusal-model.ts';

/** The purposes a clinician may declare, with the HL7 v3 PurposeOfUse code the policy knows them by. */
export const PURPOSES = [
  { id: 'treatment', code: 'TREAT', label: 'Treatment' },
  { id: 'research', code: 'HRESCH', label: 'Research' },
  { id: 'emergency', code: 'ETREAT', label: 'Emergency (break the glass)' },
] as const;

export const MIN_JUSTIFICATION = 20;

export interface ConsultTarget {
  readonly patient: string;
  readonly name?: string;
  readonly study?: string;
  readonly description?: string;
}

export function ConsultDialog({
  session,
  target,
  onTicket,
  onClose,
}: {
  session: ClinicianSession;
  target: ConsultTarget;
  onTicket: (a: ConsultAnswer, asked: Asked) => void;
  onClose: () => void;
}) {
  const [purpose, setPurpose] = useState<string>('treatment');
  const [justification, setJustification] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem>();
  const [refusal, setRefusal] = useState<Refusal>();
  const [attempt, setAttempt] = useState(0);
  const emergency = purpose === 'emergency';
  const short = emergency && justification.trim().length < MIN_JUSTIFICATION;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (short) return;
    const asked = PURPOSES.find((p) => p.id === purpose)!;
    const n = attempt + 1;
    setAttempt(n);
    setBusy(true);
    // The previous answer goes as this attempt starts: a new refusal replaces it, never piles up.
    setProblem(undefined);
    setRefusal(undefined);
    try {
      const answer = await session.consult({
        patient: target.patient,
        ...(target.study ? { study: target.study } : {}),
        purpose: asked.code,
        ...(emergency ? { emergencyJustification: justification.trim() } : {}),
      });
      onTicket(answer, {
        purpose: asked.code,
        ...(emergency ? { justification: justification.trim() } : {}),
      });
    } catch (err) {
      const p = describeProblem(err, 'consult');
      setProblem(p);
      if (p.kind === 'denied') setRefusal(describeRefusal(p.detail, asked, n, PURPOSES));
      setBusy(false);
    }
  };

  return (
    <div className="dialog-backdrop" role="presentation">
      <form
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-label="Request access"
        onSubmit={(e) => void submit(e)}
      >
        <h2>Request access</h2>
        <div className="muted">
          {target.name ? `${target.name} · ` : ''}
          {target.patient}
          {target.description ? ` · ${target.description}` : ''}
        </div>
        <label>Purpose of use (logged by the producer hospital)</label>
        <div className="purpose" role="radiogroup">
          {PURPOSES.map((p) => (
            <label key={p.id}>
              <input
                type="radio"
                name="purpose"
                value={p.id}
                checked={purpose === p.id}
                onChange={() => setPurpose(p.id)}
              />
              {p.label}
            </label>
          ))}
        </div>
        {emergency && (
          <div className="break-glass">
            <label htmlFor="justification">
              Justification (at least {MIN_JUSTIFICATION} characters; an auditor reviews every
              emergency access)
            </label>
            <textarea
              id="justification"
              value={justification}
              maxLength={2000}
              onChange={(e) => setJustification(e.target.value)}
              aria-invalid={short}
            />
            <div className="muted">
              {justification.trim().length} / {MIN_JUSTIFICATION}
            </div>
          </div>
        )}
        {problem && !refusal && <ProblemBox key={attempt} problem={problem} />}
        {problem && refusal && (
          <ProblemBox
            key={attempt}
            problem={{ ...problem, title: `${refusal.heading} by the producer hospital's policy` }}
            detail={refusal.advice ? `${refusal.reason} ${refusal.advice}` : refusal.reason}
            actions={refusal.alternatives
              .filter((p) => p.id !== purpose)
              .map((p) => ({ label: `Ask for ${p.label}`, run: () => setPurpose(p.id) }))}
          />
        )}
        <div className="actions">
          <button type="button" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button
            className={emergency ? 'danger' : 'primary'}
            type="submit"
            disabled={busy || short}
          >
            {busy ? 'Requesting…' : emergency ? 'Break the glass' : 'Request access'}
          </button>
        </div>
      </form>
    </div>
  );
}
