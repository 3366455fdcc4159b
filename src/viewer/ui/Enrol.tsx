/** First use of this browser by a clinician: enrol it (keys made here, never exported). */
import { useState } from 'react';
import { describeProblem, type Problem } from '../app/problems.ts';
import { enrolDevice, type SignIn } from '../app/clinician.ts';
import type { DeviceIdentity } from '../device/keystore.ts';
import { ProblemBox } from './Problem.tsx';

export function Enrol({
  signIn,
  onEnrolled,
  onCancel,
  reason,
}: {
  signIn: SignIn;
  onEnrolled: (id: DeviceIdentity) => void;
  onCancel: () => void;
  reason?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem>();
  const run = async () => {
    setBusy(true);
    setProblem(undefined);
    try {
      onEnrolled(await enrolDevice(signIn));
    } catch (e) {
      setProblem(describeProblem(e, 'enrol'));
      setBusy(false);
    }
  };
  return (
    <div className="card" aria-label="Enrol this device">
      <h1>Enrol this device</h1>
      <p>
        {reason ??
          `This browser is not yet enrolled for ${signIn.clinician.name}. Enrolling creates a signing key and a decryption key inside this browser; they cannot be exported. ${signIn.clinician.hospital} certifies them, and tickets for images are then issued to this device only.`}
      </p>
      {problem && <ProblemBox problem={problem} />}
      <div className="actions">
        <button className="primary" onClick={() => void run()} disabled={busy}>
          {busy ? 'Enrolling…' : 'Enrol this device'}
        </button>
        <button onClick={onCancel} disabled={busy}>
          Sign out
        </button>
      </div>
    </div>
  );
}
