/**
 * The MPR view of one series: axial, sagittal and coronal with crosshairs, made in the browser from the
 * slices already open (cornerstone/mpr.ts), with the volume's integrity badge (Verified only if every
 * slice is; otherwise the slices that are not, named) and, under the pointer, the voxel's value and
 * position. A series that cannot form a volume is refused with the reason (study/mpr-model.ts).
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import { imageIdOf } from '../cornerstone/images.ts';
import {
  createMprViewer,
  MPR_VIEWS,
  type MprView,
  type MprViewer,
  type VoxelProbe,
} from '../cornerstone/mpr.ts';
import { checkVolume, mprBadge, type MprSlice } from '../study/mpr-model.ts';
import type { SeriesView, StudySession } from '../study/session.ts';

/** The series' slices, in display order, as the volume check reads them. */
export function mprSlices(study: StudySession, series: SeriesView): MprSlice[] {
  return series.refs.map((ref, i) => {
    const v = study.instances.get(ref);
    const m = v?.opened?.meta;
    return {
      slice: i + 1,
      ...(m?.instanceNumber !== undefined
        ? { instanceNumber: m.instanceNumber }
        : v
          ? { instanceNumber: v.number }
          : {}),
      rows: m?.rows ?? 0,
      columns: m?.columns ?? 0,
      frames: m?.frames ?? 1,
      color: !!m?.color,
      ...(m?.pixelSpacing ? { pixelSpacing: m.pixelSpacing } : {}),
      ...(m?.imagePosition ? { imagePosition: m.imagePosition } : {}),
      ...(m?.imageOrientation ? { imageOrientation: m.imageOrientation } : {}),
      ...(v?.opened && v.badge ? { state: v.badge.state } : {}),
      ...(v && (v.status === 'failed' || (v.error && !v.opened)) ? { failed: true } : {}),
    };
  });
}

const LABELS: Record<MprView, string> = {
  axial: 'Axial',
  sagittal: 'Sagittal',
  coronal: 'Coronal',
};

export function MprPanel({
  study,
  series,
  onClose,
}: {
  study: StudySession;
  series: SeriesView;
  onClose: () => void;
}) {
  // The slices as they are when MPR is asked for: the volume does not change under the clinician.
  const slices = useMemo(() => mprSlices(study, series), [study, series]);
  const check = useMemo(() => checkVolume(slices), [slices]);
  const badge = useMemo(() => mprBadge(slices), [slices]);
  const axial = useRef<HTMLDivElement>(null);
  const sagittal = useRef<HTMLDivElement>(null);
  const coronal = useRef<HTMLDivElement>(null);
  const mpr = useRef<MprViewer | undefined>(undefined);
  const [ready, setReady] = useState(false);
  const [error, setError] = useState<string>();
  const [probe, setProbe] = useState<Partial<Record<MprView, VoxelProbe>>>({});

  useEffect(() => {
    if (!check.ok) return;
    let gone = false;
    const first = study.known(series.refs[0]!)?.meta;
    const window =
      first?.windowCenter !== undefined && first.windowWidth !== undefined
        ? { center: first.windowCenter, width: first.windowWidth }
        : undefined;
    createMprViewer(
      { axial: axial.current!, sagittal: sagittal.current!, coronal: coronal.current! },
      series.refs.map((r) => imageIdOf(r)),
      window,
    ).then(
      (m) => {
        if (gone) return m.destroy();
        mpr.current = m;
        setReady(true);
      },
      (e: unknown) => !gone && setError((e as Error).message),
    );
    const resize = new ResizeObserver(() => mpr.current?.resize());
    for (const el of [axial.current!, sagittal.current!, coronal.current!]) resize.observe(el);
    return () => {
      gone = true;
      resize.disconnect();
      mpr.current?.destroy();
      mpr.current = undefined;
    };
  }, [check.ok, study, series]);

  const refs = { axial, sagittal, coronal };
  return (
    <div className="mpr" role="region" aria-label="MPR" data-testid="mpr-panel">
      <div className="mpr-bar">
        <strong>
          MPR — Se {series.number} {series.description}
        </strong>
        {check.ok && (
          <span className={`badge ${badge.state}`} data-testid="mpr-badge" data-state={badge.state}>
            {badge.title}
          </span>
        )}
        <span className="muted">
          {check.ok
            ? 'left button: crosshairs · right: window/level · middle: pan · wheel: slices'
            : ''}
        </span>
        <button data-testid="mpr-close" onClick={onClose}>
          Close MPR
        </button>
      </div>
      {!check.ok ? (
        <div className="stage-message" role="alert" data-testid="mpr-refusal">
          {`No MPR for this series. ${check.reason}`}
        </div>
      ) : (
        <div className="mpr-grid" data-ready={ready}>
          {MPR_VIEWS.map((v) => (
            <div key={v} className="stage cell" data-testid={`mpr-${v}`}>
              <div
                ref={refs[v]}
                className="viewport"
                data-testid={`mpr-viewport-${v}`}
                onPointerMove={(e) => {
                  const r = e.currentTarget.getBoundingClientRect();
                  const p = mpr.current?.probe(v, e.clientX - r.left, e.clientY - r.top);
                  setProbe((old) => {
                    const next = { ...old };
                    if (p) next[v] = p;
                    else delete next[v];
                    return next;
                  });
                }}
                onContextMenu={(e) => e.preventDefault()}
              />
              <div className="overlay tl">{LABELS[v]}</div>
            </div>
          ))}
          <div className="mpr-info" data-testid="mpr-info">
            {error && <p role="alert">{`MPR failed: ${error}`}</p>}
            {MPR_VIEWS.map((v) => {
              const p = probe[v];
              return (
                <p
                  key={v}
                  data-testid={`mpr-probe-${v}`}
                  data-world={p ? p.world.join(',') : ''}
                  data-index={p ? p.index.join(',') : ''}
                  data-value={p?.value ?? ''}
                >
                  {LABELS[v]}:{' '}
                  {p
                    ? `${p.value} at (${p.world.map((x) => x.toFixed(1)).join(', ')}) mm, voxel ${p.index.join(', ')}`
                    : 'point into the view'}
                </p>
              );
            })}
          </div>
        </div>
      )}
    </div>
  );
}
