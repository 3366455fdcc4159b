/**
 * The side panels of the study viewer: the integrity detail of the image on screen, the tag browser of
 * its restored header, and the auditor view (every check, the signer chains, the container's clear
 * contents as served).
 */
import { useEffect, useMemo, useState } from 'react';
import type { CertificateInfo, ChainReport, WorkerResponse } from '../pipeline/protocol.ts';
import type { InstanceView, StudySession } from '../study/session.ts';
import { Badge } from './Badge.tsx';
import { shownRows } from './tag-model.ts';

export function IntegrityPanel({
  inst,
  expectedTrace,
}: {
  inst?: InstanceView;
  expectedTrace: string;
}) {
  if (!inst) return <p className="muted">No image on screen.</p>;
  const v = inst.opened?.verdict;
  const b = inst.badge;
  return (
    <div data-testid="integrity-panel">
      <Badge model={b} pending={inst.error ? 'Unverifiable' : undefined} />
      {inst.error && <p>{inst.error}</p>}
      {b && (
        <ul>
          {b.lines.map((l) => (
            <li key={l}>{l}</li>
          ))}
        </ul>
      )}
      {v && (
        <>
          <h3>Rests on</h3>
          <dl className="kv">
            <dt>Producer</dt>
            <dd>{v.seal?.signer?.subject ?? `unknown key ${v.seal?.keyId ?? ''}`}</dd>
            <dt>Sealed</dt>
            <dd>{v.seal?.createdAt ?? '—'}</dd>
            <dt>Cloud</dt>
            <dd>{v.trace?.signer?.subject ?? (v.trace ? `unknown key ${v.trace.keyId}` : '—')}</dd>
            <dt>Traced</dt>
            <dd>{v.trace?.tracedAt ?? 'not traced'}</dd>
            <dt>Trace</dt>
            <dd>
              {v.trace
                ? v.trace.id === expectedTrace
                  ? 'the trace of your ticket'
                  : "NOT your ticket's trace"
                : '—'}
            </dd>
            <dt>Chain</dt>
            <dd>{v.seal?.signer?.chain.join(' → ') || '—'}</dd>
          </dl>
          {v.tiles.length > 0 && (
            <>
              <h3>Tampered tiles</h3>
              <ul>
                {v.tiles.map((t) => (
                  <li key={`${t.frame}.${t.index}`}>
                    frame {t.frame}, tile {t.index}: {t.width}×{t.height} at ({t.x}, {t.y})
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </div>
  );
}

export function TagPanel({ inst }: { inst?: InstanceView }) {
  const [filter, setFilter] = useState('');
  const [opened, setOpened] = useState<ReadonlySet<number>>(new Set());
  const header = inst?.opened?.header;
  // Sequences close again when another image comes on screen (its rows are another list).
  useEffect(() => setOpened(new Set()), [header]);
  const rows = useMemo(() => shownRows(header ?? [], opened, filter), [header, opened, filter]);
  if (!inst?.opened) return <p className="muted">The header is shown once the image is opened.</p>;
  const toggle = (i: number) =>
    setOpened((o) => {
      const n = new Set(o);
      if (!n.delete(i)) n.add(i);
      return n;
    });
  return (
    <div data-testid="tag-browser">
      <input
        aria-label="Filter tags"
        placeholder="Filter: tag, keyword or value"
        value={filter}
        onChange={(e) => setFilter(e.target.value)}
        style={{ width: '100%', marginBottom: 6 }}
      />
      <p className="muted">
        The original header, identifying attributes restored from the encrypted attributes.
      </p>
      <table className="tags">
        <colgroup>
          <col className="tag" />
          <col className="vr" />
          <col className="keyword" />
          <col />
        </colgroup>
        <thead>
          <tr>
            <th>Tag</th>
            <th>VR</th>
            <th>Keyword</th>
            <th>Value</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ index, row: r, parent, open }) => (
            <tr key={index} data-tag={r.tag} data-depth={r.depth}>
              <td>
                {parent ? (
                  <button
                    type="button"
                    className="tag-toggle"
                    data-testid="tag-toggle"
                    aria-expanded={open}
                    aria-label={`${open ? 'Close' : 'Open'} ${r.name}`}
                    disabled={!!filter.trim()}
                    onClick={() => toggle(index)}
                  >
                    {open ? '▾' : '▸'}
                  </button>
                ) : null}
                {r.tag}
              </td>
              <td>{r.vr}</td>
              {/* The nesting shows in the keyword column, so that every tag keeps its line. */}
              <td style={{ paddingLeft: 4 + r.depth * 10 }}>{r.name}</td>
              <td>{r.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Certificate({ c }: { c: CertificateInfo }) {
  return (
    <div className="cert">
      <dl className="kv">
        <dt>Subject</dt>
        <dd>{c.subject}</dd>
        <dt>Issuer</dt>
        <dd>{c.issuer}</dd>
        <dt>Serial</dt>
        <dd>{c.serial}</dd>
        <dt>Valid</dt>
        <dd>
          {c.notBefore} → {c.notAfter}
        </dd>
        <dt>SHA-256</dt>
        <dd>{c.sha256}</dd>
        {c.role && (
          <>
            <dt>Role</dt>
            <dd>{c.role}</dd>
          </>
        )}
        <dt>Trust group</dt>
        <dd>{c.member ? `member "${c.member}"` : 'not a member'}</dd>
      </dl>
    </div>
  );
}

function Chain({ title, chain }: { title: string; chain?: ChainReport }) {
  return (
    <>
      <h3>{title}</h3>
      {!chain && <p className="muted">none</p>}
      {chain && (
        <>
          <p className={`check ${chain.status === 'valid' ? 'pass' : 'fail'}`}>
            {chain.status === 'valid' ? 'valid' : 'refused'}: {chain.detail}
          </p>
          {chain.certificates.map((c) => (
            <Certificate key={c.sha256} c={c} />
          ))}
        </>
      )}
    </>
  );
}

type Inspected = Extract<WorkerResponse, { kind: 'inspected' }>;

export function AuditorPanel({ study, inst }: { study: StudySession; inst?: InstanceView }) {
  const [report, setReport] = useState<{ ref: string; r?: Inspected; error?: string }>();
  const ref = inst?.ref;
  const received = !!inst?.served;
  useEffect(() => {
    if (!ref || !received) return;
    let live = true;
    study.inspect(ref).then(
      (r) => live && setReport({ ref, r }),
      (e: unknown) => live && setReport({ ref, error: (e as Error).message }),
    );
    return () => {
      live = false;
    };
  }, [study, ref, received]);
  if (!inst) return <p className="muted">No image on screen.</p>;
  const v = inst.opened?.verdict;
  const r = report?.ref === ref ? report : undefined;
  const c = r?.r?.container;
  return (
    <div data-testid="auditor-view">
      <h3>Checks</h3>
      {!v && <p className="muted">{inst.error ?? 'Not verified yet.'}</p>}
      {v && (
        <>
          <p>{v.summary}</p>
          <ul className="checks" data-testid="auditor-checks">
            {v.checks.map((k) => (
              <li
                key={k.id}
                className={`check ${k.result}`}
                data-check={k.id}
                data-result={k.result}
              >
                <strong>{k.result}</strong> <code>{k.id}</code> ({k.part}) — {k.detail}
              </li>
            ))}
          </ul>
        </>
      )}
      {r?.error && <p className="check fail">{r.error}</p>}
      {!r && received && <p className="muted">Reading the container…</p>}
      {r?.r && (
        <>
          <Chain title="Seal signer (producer)" chain={r.r.seal} />
          <Chain title="Trace signer (cloud)" chain={r.r.trace} />
          <h3>Container (clear contents, as served)</h3>
          {c && (
            <dl className="kv" data-testid="auditor-container">
              <dt>Version</dt>
              <dd>{c.version}</dd>
              <dt>Intact</dt>
              <dd>{c.intact ? 'yes' : `no${c.problem ? `: ${c.problem}` : ''}`}</dd>
              {c.layout && (
                <>
                  <dt>Region</dt>
                  <dd>
                    {c.layout.regionSamples} samples × {c.layout.planes} LSB plane(s),{' '}
                    {c.layout.containerBytes} bytes
                  </dd>
                  <dt>Hiding</dt>
                  <dd>
                    threshold {c.layout.hiding.threshold}, {c.layout.hiding.bitsPerSample}{' '}
                    bit(s)/sample, {c.layout.hiding.payloadBits} payload bits
                  </dd>
                  <dt>Tiles</dt>
                  <dd>
                    {c.layout.tiles.count} of side {c.layout.tiles.side}
                  </dd>
                </>
              )}
              {c.seal && (
                <>
                  <dt>Sealed</dt>
                  <dd>{c.seal.createdAt}</dd>
                  <dt>Cipher</dt>
                  <dd>{c.seal.cipher}</dd>
                  <dt>Signature</dt>
                  <dd>
                    {c.seal.signatureAlgorithm}, key {c.seal.signerKeyId}
                  </dd>
                  <dt>Lossy source</dt>
                  <dd>{c.seal.lossySource ? 'yes' : 'no'}</dd>
                  <dt>Patient ref</dt>
                  <dd>{c.seal.patientRef}</dd>
                  <dt>Physician ref</dt>
                  <dd>{c.seal.physicianRef}</dd>
                  {Object.entries(c.seal.digests).map(([k, d]) => (
                    <FragmentRow key={k} k={k} v={d} />
                  ))}
                </>
              )}
              <dt>Trace</dt>
              <dd>
                {c.trace
                  ? `${c.trace.id} at ${c.trace.tracedAt} (${c.trace.signatureAlgorithm}, key ${c.trace.cloudKeyId})`
                  : 'none'}
              </dd>
            </dl>
          )}
        </>
      )}
    </div>
  );
}

function FragmentRow({ k, v }: { k: string; v: string }) {
  return (
    <>
      <dt>{k}</dt>
      <dd>{v}</dd>
    </>
  );
}
