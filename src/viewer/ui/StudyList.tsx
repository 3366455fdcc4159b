/**
 * The studies the producer hospital's policy lets this clinician open for treatment (the search itself
 * is logged and decided by that policy), narrowed by a search box that asks the producer's QIDO-RS
 * (patient ID or name, among the same studies, under the same policy), and a request by
 * patient ID for anyone not listed (research, or an emergency access). A clinician whose policy allows
 * no search (a nurse) gets the request by patient ID alone, as a neutral form rather than an error.
 */
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import type { ClinicianSession, StudyListing } from '../app/clinician.ts';
import { describeProblem, type Problem } from '../app/problems.ts';
import type { ConsultTarget } from './ConsultDialog.tsx';
import { ProblemBox } from './Problem.tsx';

const formatDate = (d: string): string =>
  /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : d || '—';

const formatName = (n: string): string => n.replace(/\^+/g, ' ').trim() || '—';

export function StudyList({
  session,
  onRequest,
}: {
  session: ClinicianSession;
  onRequest: (t: ConsultTarget) => void;
}) {
  const [studies, setStudies] = useState<StudyListing>();
  const [problem, setProblem] = useState<Problem>();
  const [attempt, setAttempt] = useState(0);
  const [patient, setPatient] = useState('');
  const [query, setQuery] = useState('');
  /** What the producer's QIDO-RS found for the last query it answered. */
  const [found, setFound] = useState<{ query: string; uids: Set<string> }>();
  const [searchProblem, setSearchProblem] = useState<Problem>();
  const shown = useMemo(
    () =>
      // While a newer query is on its way, the last answer stays on screen.
      query.trim() && found
        ? (studies ?? []).filter((s) => found.uids.has(s.study.uid))
        : (studies ?? []),
    [studies, query, found],
  );

  // Each query once typing pauses (250 ms); an answer to an older query is dropped.
  useEffect(() => {
    if (!query.trim()) return;
    let live = true;
    const timer = setTimeout(() => {
      session.findStudies(query).then(
        (uids) => {
          if (!live) return;
          setSearchProblem(undefined);
          setFound({ query, uids });
        },
        (e: unknown) => live && setSearchProblem(describeProblem(e, 'search')),
      );
    }, 250);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [session, query]);
  // The policy lets this clinician search nothing: not a failure, they open studies by patient ID.
  const noSearch = problem?.kind === 'denied';

  useEffect(() => {
    let live = true;
    setProblem(undefined);
    session.search().then(
      (s) => live && setStudies(s),
      (e: unknown) => live && setProblem(describeProblem(e, 'search')),
    );
    return () => {
      live = false;
    };
  }, [session, attempt]);

  const other = (e: FormEvent) => {
    e.preventDefault();
    if (patient.trim()) onRequest({ patient: patient.trim() });
  };

  const requestForm = (
    <form
      onSubmit={other}
      style={{ marginTop: noSearch ? 0 : 24 }}
      aria-label={noSearch ? 'Open a patient' : 'Request another patient'}
      data-testid="patient-form"
    >
      {!noSearch && <h3>Request another patient</h3>}
      <p className="muted">
        {noSearch
          ? "Enter the patient's ID. The producer hospital's policy decides on each request, which it logs with its declared purpose."
          : "For a patient not listed (research, or an emergency access). The producer's policy decides."}
      </p>
      <input
        aria-label="Patient ID"
        placeholder="Patient ID"
        value={patient}
        maxLength={64}
        onChange={(e) => setPatient(e.target.value)}
      />{' '}
      <button type="submit" className={noSearch ? 'primary' : ''} disabled={!patient.trim()}>
        Request…
      </button>
    </form>
  );

  if (noSearch)
    return (
      <div className="page" data-testid="patient-id-only">
        <h2>Open a patient&apos;s studies</h2>
        {requestForm}
      </div>
    );

  return (
    <div className="page">
      <h2>Studies shared with you</h2>
      <p className="muted">
        Listed by the producer hospital for your declared purpose: treatment. Opening a study asks
        it for a ticket; the request and its purpose are logged.
      </p>
      {problem && (
        <ProblemBox
          problem={problem}
          actions={
            problem.next === 'retry'
              ? [{ label: 'Try again', run: () => setAttempt((a) => a + 1) }]
              : []
          }
        />
      )}
      {!studies && !problem && <p className="muted">Searching…</p>}
      {studies && studies.length === 0 && (
        <p className="muted" data-testid="no-studies">
          No study is shared with you for treatment. You can still request one by patient ID below.
        </p>
      )}
      {studies && studies.length > 0 && (
        <>
          <input
            type="search"
            aria-label="Search the studies by patient ID or name"
            placeholder="Search: patient ID or name"
            data-testid="study-search"
            value={query}
            maxLength={64}
            onChange={(e) => setQuery(e.target.value)}
            style={{ width: 320, marginBottom: 8 }}
          />{' '}
          <span className="muted" data-testid="study-count">
            {shown.length === studies.length
              ? `${studies.length} ${studies.length === 1 ? 'study' : 'studies'}`
              : `${shown.length} of ${studies.length} studies`}
          </span>
          {searchProblem && <ProblemBox problem={searchProblem} actions={[]} />}
          {shown.length === 0 && (
            <p className="muted" data-testid="no-match">
              No listed study matches. A patient not listed can be requested by ID below.
            </p>
          )}
        </>
      )}
      {shown.length > 0 && (
        <table className="list" data-testid="study-list">
          <thead>
            <tr>
              <th>Patient</th>
              <th>Patient ID</th>
              <th>Born</th>
              <th>Study date</th>
              <th>Description</th>
              <th>Modality</th>
              <th>Series</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((s) => (
              <tr key={s.study.uid} data-testid="study-row" data-patient={s.patient.id}>
                <td>{formatName(s.patient.name)}</td>
                <td>{s.patient.id}</td>
                <td>{formatDate(s.patient.birthDate)}</td>
                <td>{formatDate(s.study.date)}</td>
                <td>{s.study.description || '—'}</td>
                <td>{s.study.modality}</td>
                <td>
                  {s.series.map((x) => `${x.description || 'series'} (${x.instances})`).join(', ')}
                </td>
                <td>
                  <button
                    className="primary"
                    onClick={() =>
                      onRequest({
                        patient: s.patient.id,
                        name: formatName(s.patient.name),
                        study: s.study.uid,
                        description: s.study.description,
                      })
                    }
                  >
                    Open…
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {requestForm}
    </div>
  );
}
