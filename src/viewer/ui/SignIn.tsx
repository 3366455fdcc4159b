/** Sign-in to the consumer hospital (the token stays in memory; a reload signs out). */
import { useState, type FormEvent } from 'react';
import { FederationClient, type Endpoints } from '../../core/client/federation.ts';
import { describeProblem, type Problem } from '../app/problems.ts';
import type { SignIn as SignedIn } from '../app/clinician.ts';
import { ProblemBox } from './Problem.tsx';

export function SignIn({
  endpoints,
  onSignedIn,
  notice,
}: {
  endpoints: Endpoints;
  onSignedIn: (s: SignedIn) => void;
  notice?: Problem;
}) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>(notice);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setProblem(undefined);
    try {
      const r = await FederationClient.login(endpoints.consumer, user.trim(), password);
      setPassword('');
      onSignedIn({ endpoints, token: r.token, clinician: r.clinician });
    } catch (err) {
      setProblem(describeProblem(err, 'sign-in'));
      setBusy(false);
    }
  };

  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-label="Sign in">
      <h1>Sign in</h1>
      <p>
        Zero-trust image viewer of your hospital. Images are decrypted and verified on this device
        only.
      </p>
      <label htmlFor="user">User</label>
      <input
        id="user"
        name="user"
        autoComplete="username"
        value={user}
        onChange={(e) => setUser(e.target.value)}
        required
        maxLength={64}
      />
      <label htmlFor="password">Password</label>
      <input
        id="password"
        name="password"
        type="password"
        autoComplete="current-password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        required
        maxLength={256}
      />
      {problem && <ProblemBox problem={problem} />}
      <div className="actions">
        <button className="primary" type="submit" disabled={busy || !user || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </div>
    </form>
  );
}
