/**
 * Leak tracing in the browser: the auditor drops (or picks) image files; each is read here, its
 * container examined without any image key — the producer's seal and the cloud's trace verified against
 * the pinned federation PKI — and a verified trace resolved through the producer's log (an access the
 * producer logs). The answer names who obtained the image, or says the trace is forged, unknown to every
 * log, or that the image was never traced.
 */
import { useRef, useState, type DragEvent } from 'react';
import type { AuditorClient } from '../../core/audit/client.ts';
import { describeLeak, describeLeakFailure, MAX_LEAK_BYTES, type LeakView } from './leak-model.ts';

interface Result {
  readonly id: number;
  readonly file: string;
  readonly view?: LeakView;
}

export function LeakTrace({
  client,
  onTrail,
}: {
  client: Pick<AuditorClient, 'traceLeak'>;
  /** Shows the audit trail of a resolved trace's ticket (step 4 of the procedure: corroborate). */
  onTrail?: (ticket: string) => void;
}) {
  const [results, setResults] = useState<readonly Result[]>([]);
  const [over, setOver] = useState(false);
  const run = useRef(0);
  const input = useRef<HTMLInputElement>(null);

  const trace = async (files: readonly File[]) => {
    const mine = ++run.current;
    const queued = files.map((f, i) => ({ id: mine * 1000 + i, file: f.name }));
    setResults(queued);
    for (const [i, f] of files.entries()) {
      let view: LeakView;
      try {
        if (f.size > MAX_LEAK_BYTES)
          throw new RangeError(`${f.name} is larger than ${MAX_LEAK_BYTES / 2 ** 20} MiB`);
        const bytes = new Uint8Array(await f.arrayBuffer());
        view = describeLeak(await client.traceLeak(bytes, f.name));
      } catch (e) {
        view = describeLeakFailure(e, f.name);
      }
      if (run.current !== mine) return; // another drop replaced this one
      setResults((rs) => rs.map((r, j) => (j === i ? { ...r, view } : r)));
    }
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    const files = [...e.dataTransfer.files];
    if (files.length) void trace(files);
  };

  return (
    <section className="audit-section" data-testid="leak-trace">
      <h2>Trace a leaked image</h2>
      <p className="muted">
        Drop an image file found where it should not be — as the cloud served it, or exported from a
        viewer. It is examined here without any image key; only a verified trace is looked up in the
        producer&apos;s log, and that look-up is itself logged.
      </p>
      <div
        className={`dropzone${over ? ' over' : ''}`}
        data-testid="leak-drop"
        onDragOver={(e) => {
          e.preventDefault();
          e.dataTransfer.dropEffect = 'copy';
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        <span>Drop image files here, or</span>
        <button type="button" onClick={() => input.current?.click()}>
          Choose files…
        </button>
        <input
          ref={input}
          type="file"
          multiple
          hidden
          data-testid="leak-file"
          onChange={(e) => {
            const files = [...(e.target.files ?? [])];
            e.target.value = '';
            if (files.length) void trace(files);
          }}
        />
      </div>
      {results.map((r) => (
        <LeakResult key={r.id} file={r.file} view={r.view} {...(onTrail ? { onTrail } : {})} />
      ))}
    </section>
  );
}

export function LeakResult({
  file,
  view,
  onTrail,
}: {
  file: string;
  view?: LeakView;
  onTrail?: (ticket: string) => void;
}) {
  if (!view)
    return (
      <article
        className="leak pending"
        data-testid="leak-result"
        data-status="checking"
        data-file={file}
      >
        <strong>{file}</strong> <span className="muted">examining…</span>
      </article>
    );
  const ticket = view.fields.find((f) => f.id === 'ticket')?.value;
  return (
    <article
      className={`leak ${view.status}`}
      data-testid="leak-result"
      data-status={view.status}
      data-file={file}
      aria-live="polite"
    >
      <header>
        <strong data-testid="leak-title">{view.title}</strong>
        <span className="muted">{file}</span>
      </header>
      <p>{view.explanation}</p>
      {view.reasons.length > 0 && (
        <ul data-testid="leak-reasons">
          {view.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
      <dl className="kv">
        {view.fields.map((f) => (
          <div key={f.id} className="kv-row">
            <dt>{f.label}</dt>
            <dd data-testid={`leak-${f.id}`}>{f.value}</dd>
          </div>
        ))}
      </dl>
      {onTrail && view.status === 'resolved' && ticket && (
        <div className="actions">
          <button data-testid="leak-show-trail" onClick={() => onTrail(ticket)}>
            Audit trail of this ticket
          </button>
        </div>
      )}
    </article>
  );
}
