/**
 * The audit trail view: the auditor names a patient (the producer maps the id to its pseudonym), a
 * study, a clinician or a ticket; the merged trail of the producer, the cloud and the consumer comes
 * back in time order, every party's whole chain verified here (links, hashes, signed checkpoints with
 * the party's certified key), each break shown on the record it concerns with its seq and kind; the
 * shown selection exports as DICOM audit messages (XML) or CSV.
 */
import { Fragment, useEffect, useRef, useState, type FormEvent } from 'react';
import { saveFile } from './download.ts';
import { verifiedTrail, type VerifiedTrail } from './auditor.ts';
import type { AuditorClient } from '../../core/audit/client.ts';
import {
  exportSelection,
  QueryError,
  selectRows,
  TRAIL_KINDS,
  trailFilter,
  type OrganisationNames,
  type TrailKind,
  type TrailRow,
} from './trail-model.ts';
import { describeProblem, type Problem } from '../app/problems.ts';
import { ProblemBox } from '../ui/Problem.tsx';

const PARTIES = ['producer', 'cloud', 'consumer'] as const;
/** Rows drawn at once; the export always carries the whole selection. */
export const ROWS_SHOWN = 1000;
/** Characters of a record's details shown before the auditor opens them. */
const DETAILS_SHOWN = 120;

type State =
  | { readonly kind: 'idle' }
  | { readonly kind: 'loading' }
  | { readonly kind: 'shown'; readonly trail: VerifiedTrail; readonly about: TrailKind }
  | { readonly kind: 'failed'; readonly problem: Problem };

/** A trail asked for from elsewhere in the area (a traced file's ticket); `id` tells requests apart. */
export interface TrailRequest {
  readonly id: number;
  readonly kind: TrailKind;
  readonly value: string;
}

export function TrailPanel({
  client,
  request,
  names = new Map(),
}: {
  client: Pick<AuditorClient, 'mergedTrail' | 'verifyChain'>;
  request?: TrailRequest;
  /** The trust group's organisations by id, to name hospitals rather than their ids. */
  names?: OrganisationNames;
}) {
  const [kind, setKind] = useState<TrailKind>('patient');
  const [typed, setTyped] = useState('');
  const [invalid, setInvalid] = useState<string>();
  const [state, setState] = useState<State>({ kind: 'idle' });
  const [shown, setShown] = useState<ReadonlySet<string>>(new Set(PARTIES));
  const generation = useRef(0);

  const show = async (about: TrailKind, value: string) => {
    let filter;
    try {
      filter = trailFilter(about, value);
    } catch (err) {
      setInvalid(
        err instanceof QueryError ? err.message : 'This is not something a trail is about.',
      );
      return;
    }
    const mine = ++generation.current;
    setInvalid(undefined);
    setState({ kind: 'loading' });
    let next: State;
    try {
      next = { kind: 'shown', trail: await verifiedTrail(client, filter, names), about };
    } catch (err) {
      next = { kind: 'failed', problem: describeProblem(err, 'start') };
    }
    if (generation.current === mine) setState(next); // a later query replaced this one
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void show(kind, typed);
  };

  useEffect(() => {
    if (!request) return;
    setKind(request.kind);
    setTyped(request.value);
    void show(request.kind, request.value);
    // Only a new request runs a query; the client and show are those of this sign-in.
  }, [request?.id]);

  const rows = state.kind === 'shown' ? selectRows(state.trail.view, shown) : [];
  return (
    <section className="audit-section" data-testid="trail-panel">
      <h2>Audit trail</h2>
      <form className="trail-query" onSubmit={submit}>
        <label htmlFor="trail-kind">About</label>
        <select
          id="trail-kind"
          data-testid="trail-kind"
          value={kind}
          onChange={(e) => setKind(e.target.value as TrailKind)}
        >
          {TRAIL_KINDS.map((k) => (
            <option key={k.id} value={k.id}>
              {k.label}
            </option>
          ))}
        </select>
        <input
          id="trail-value"
          aria-label="Trail of"
          data-testid="trail-value"
          autoComplete="off"
          spellCheck={false}
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
        />
        <button className="primary" type="submit" disabled={state.kind === 'loading'}>
          Show trail
        </button>
      </form>
      {invalid && (
        <p className="invalid" role="alert" data-testid="trail-invalid">
          {invalid}
        </p>
      )}
      {state.kind === 'loading' && (
        <p className="muted" data-testid="trail-loading">
          Fetching the trails and verifying every party&apos;s chain here…
        </p>
      )}
      {state.kind === 'failed' && <ProblemBox problem={state.problem} />}
      {state.kind === 'shown' && (
        <>
          {state.trail.trails.some((t) => t.truncated) && (
            <p className="muted" data-testid="trail-truncated">
              A party cut its selection at its limit: narrow the query to see every record.
            </p>
          )}
          <ul className="chains" data-testid="chains" data-ok={state.trail.view.ok}>
            {state.trail.view.chains.map((c) => (
              <li
                key={c.party}
                className={c.ok ? 'ok' : 'broken'}
                data-testid="chain"
                data-party={c.party}
                data-ok={c.ok}
                data-breaks={c.breaks.map((b) => `${b.seq}:${b.kind}`).join(' ')}
              >
                <span>{c.text}</span>
                {c.outside.length > 0 && (
                  <ul>
                    {c.outside.map((b) => (
                      <li key={`${b.seq}:${b.kind}`} data-testid="outside-break">
                        record {b.seq} (not in this selection): {b.kind} — {b.detail}
                      </li>
                    ))}
                  </ul>
                )}
              </li>
            ))}
          </ul>
          <div className="trail-tools">
            {PARTIES.map((p) => (
              <label key={p} className="inline">
                <input
                  type="checkbox"
                  data-testid={`show-${p}`}
                  checked={shown.has(p)}
                  onChange={(e) => {
                    const next = new Set(shown);
                    if (e.target.checked) next.add(p);
                    else next.delete(p);
                    setShown(next);
                  }}
                />
                {names.get(p) ?? p}
              </label>
            ))}
            <span className="muted" data-testid="trail-count">
              {rows.length} record(s) shown
            </span>
            <span className="spacer" />
            <button
              data-testid="export-xml"
              disabled={!rows.length}
              onClick={() => saveFile(exportSelection(rows, 'xml', state.about))}
            >
              Export DICOM audit messages (XML)
            </button>
            <button
              data-testid="export-csv"
              disabled={!rows.length}
              onClick={() => saveFile(exportSelection(rows, 'csv', state.about))}
            >
              Export CSV
            </button>
          </div>
          <TrailTable rows={rows} names={names} />
        </>
      )}
    </section>
  );
}

export function TrailTable({
  rows,
  names = new Map(),
}: {
  rows: readonly TrailRow[];
  names?: OrganisationNames;
}) {
  if (!rows.length) return <p className="muted">No record in this selection.</p>;
  return (
    <>
      {rows.length > ROWS_SHOWN && (
        <p className="muted">
          The first {ROWS_SHOWN} of {rows.length} records are drawn; the export carries all of them.
        </p>
      )}
      <table className="list trail" data-testid="trail-table">
        <thead>
          <tr>
            <th>Time (UTC)</th>
            <th>Party</th>
            <th>Seq</th>
            <th>Event</th>
            <th>Actor</th>
            <th>Objects</th>
            <th>Outcome</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, ROWS_SHOWN).map((r) => (
            <tr
              key={r.key}
              className={r.breaks.length ? 'broken' : undefined}
              data-testid="trail-row"
              data-party={r.party}
              data-seq={r.seq}
              data-subtype={r.subtype}
              data-breaks={r.breaks.map((b) => b.kind).join(' ')}
            >
              <td>{r.time.replace('T', ' ').replace('Z', '')}</td>
              <td>{names.get(r.party) ?? r.party}</td>
              <td>{r.seq}</td>
              <td>
                {r.eventName}
                <br />
                <code>{r.subtype}</code>
                {r.breaks.map((b) => (
                  <div key={b.kind} className="break" data-testid="row-break" data-kind={b.kind}>
                    ⚠ record {b.seq}: {b.kind} — {b.detail}
                  </div>
                ))}
              </td>
              <td>{r.actor}</td>
              <td className="ids">
                {r.objects}
                {r.images.length > 0 && (
                  // A trace record names every image of its ticket: a count, opened on demand.
                  <details data-testid="row-images" data-count={r.images.length}>
                    <summary>
                      {r.images.length} image{r.images.length === 1 ? '' : 's'}
                    </summary>
                    <ul>
                      {r.images.map((id) => (
                        <li key={id}>{id}</li>
                      ))}
                    </ul>
                  </details>
                )}
              </td>
              <td data-testid="row-outcome" data-outcome={r.record.outcome}>
                {r.outcome}
              </td>
              <td className="details">
                {r.fields.length > 0 && (
                  <dl className="kv fields" data-testid="row-fields">
                    {r.fields.map((f) => (
                      <Fragment key={f.label}>
                        <dt>{f.label}</dt>
                        <dd data-field={f.label}>{f.value}</dd>
                      </Fragment>
                    ))}
                  </dl>
                )}
                {r.details !== '{}' && (
                  <details>
                    <summary>
                      {r.fields.length ? (
                        'All details'
                      ) : (
                        <code>
                          {r.details.slice(0, DETAILS_SHOWN)}
                          {r.details.length > DETAILS_SHOWN ? '…' : ''}
                        </code>
                      )}
                    </summary>
                    <code>{r.details}</code>
                  </details>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
