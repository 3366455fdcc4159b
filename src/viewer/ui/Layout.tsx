/**
 * Layouts of the study viewer: 1×1, 1×2 or 2×2 viewports. The first is the study viewer's own stage
 * (its toolbar, keyboard and side panels follow it); the others are stack viewports in the same
 * rendering engine and tool group (the same mouse tools), each with its series, slice, position and
 * integrity badge. A click in a viewport makes it the active one (outlined); a click on a thumbnail
 * puts that series into the active viewport, and a thumbnail dragged onto a viewport puts it there.
 * Viewports showing one frame of reference scroll together by position and share window/level while
 * synchronisation is on (cornerstone/sync.ts; the toolbar switches it).
 */
import { useEffect, useRef, useState, type DragEvent } from 'react';
import type { ViewportHost } from '../cornerstone/host.ts';
import { imageIdOf } from '../cornerstone/images.ts';
import { createLayoutSync, type SyncMember } from '../cornerstone/sync.ts';
import { createStackViewer, type StackViewer } from '../cornerstone/viewer.ts';
import type { SeriesView, StudySession } from '../study/session.ts';
import { Badge } from './Badge.tsx';
import { axisPosition } from './StudyViewer.tsx';

export const LAYOUTS = { '1x1': 1, '1x2': 2, '2x2': 4 } as const;
export type LayoutKind = keyof typeof LAYOUTS;

/** The drag-and-drop type of a series thumbnail (its value: the series' uid). */
export const SERIES_MIME = 'application/x-ztv-series';

export interface LayoutState {
  readonly kind: LayoutKind;
  readonly count: number;
  /** The active viewport: 0 is the stage, 1.. the other cells. */
  readonly active: number;
  /** The series of cells 1..3 (cell 0's is the study viewer's own). */
  readonly series: readonly (string | undefined)[];
  readonly sync: boolean;
  setKind(kind: LayoutKind): void;
  setActive(cell: number): void;
  setSync(on: boolean): void;
  /** Puts a series into a cell other than the stage. */
  place(cell: number, seriesUid: string): void;
}

export function useLayout(): LayoutState {
  const [kind, setKindState] = useState<LayoutKind>('1x1');
  const [active, setActive] = useState(0);
  const [series, setSeries] = useState<(string | undefined)[]>([]);
  // Off by default: scrolling in sync between series of different spacing overshoots (not done).
  const [sync, setSync] = useState(false);
  const count = LAYOUTS[kind];
  return {
    kind,
    count,
    active: active < count ? active : 0,
    series,
    sync,
    setKind(k) {
      setKindState(k);
      if (active >= LAYOUTS[k]) setActive(0);
    },
    setActive,
    setSync,
    place(cell, uid) {
      setSeries((s) => {
        const next = [...s];
        next[cell - 1] = uid;
        return next;
      });
    },
  };
}

/** Lets a thumbnail be dropped here. */
export function allowSeriesDrop(e: DragEvent): void {
  if (e.dataTransfer.types.includes(SERIES_MIME)) e.preventDefault();
}

/** A drop handler that gives `put` the series of a thumbnail dropped (other drops are ignored). */
export function onSeriesDrop(put: (seriesUid: string) => void) {
  return (e: DragEvent) => {
    const uid = e.dataTransfer.getData(SERIES_MIME);
    if (!uid) return;
    e.preventDefault();
    put(uid);
  };
}

export function LayoutControls({ layout }: { layout: LayoutState }) {
  return (
    <>
      {(Object.keys(LAYOUTS) as LayoutKind[]).map((k) => (
        <button
          key={k}
          data-testid={`layout-${k}`}
          aria-pressed={layout.kind === k}
          title={`Layout ${k.replace('x', '×')}`}
          onClick={() => layout.setKind(k)}
        >
          {k.replace('x', '×')}
        </button>
      ))}
      <button
        data-testid="sync"
        aria-pressed={layout.sync}
        disabled={layout.count === 1}
        title="Synchronise scrolling (by position) and window/level between viewports of one frame of reference"
        onClick={() => layout.setSync(!layout.sync)}
      >
        Sync
      </button>
    </>
  );
}

/** The Frame of Reference UIDs of a series' open slices (a slice without one: its series' uid). */
export function framesOfReference(study: StudySession, s: SeriesView | undefined): string[] {
  const out = new Set<string>();
  for (const r of s?.refs ?? []) {
    const m = study.known(r)?.meta;
    if (m) out.add(m.frameOfReferenceUid ?? m.seriesInstanceUid ?? s!.uid);
  }
  return [...out].sort();
}

/**
 * The cells after the stage, and the synchronisation of every cell: the stage's viewer joins with
 * its series `mainSeries`.
 */
export function LayoutCells({
  layout,
  host,
  study,
  mainSeries,
}: {
  layout: LayoutState;
  host: ViewportHost;
  study: StudySession;
  mainSeries?: string;
}) {
  const [viewers, setViewers] = useState<(StackViewer | undefined)[]>([]);
  const sync = useRef<ReturnType<typeof createLayoutSync> | undefined>(undefined);
  useEffect(() => {
    const s = createLayoutSync();
    sync.current = s;
    return () => s.destroy();
  }, []);
  const framesOf = (uid?: string) =>
    framesOfReference(
      study,
      study.series.find((x) => x.uid === uid),
    );
  const members: SyncMember[] = [
    {
      engineId: host.viewer.engineId,
      viewportId: host.viewer.viewportId,
      frames: framesOf(mainSeries),
    },
  ];
  for (let i = 1; i < layout.count; i++) {
    const v = viewers[i];
    if (v)
      members.push({
        engineId: v.engineId,
        viewportId: v.viewportId,
        frames: framesOf(layout.series[i - 1]),
      });
  }
  const key = JSON.stringify([layout.sync, members]);
  useEffect(() => {
    sync.current?.update(JSON.parse(key)[1] as SyncMember[], layout.sync);
  }, [key, layout.sync]);
  const cells = [];
  for (let i = 1; i < layout.count; i++)
    cells.push(
      <LayoutCell
        key={i}
        cell={i}
        host={host}
        study={study}
        seriesUid={layout.series[i - 1]}
        active={layout.active === i}
        onActivate={() => layout.setActive(i)}
        onDropSeries={(uid) => {
          layout.place(i, uid);
          layout.setActive(i);
        }}
        onViewer={(v) =>
          setViewers((vs) => {
            const next = [...vs];
            next[i] = v;
            return next;
          })
        }
      />,
    );
  return <>{cells}</>;
}

function LayoutCell({
  cell,
  host,
  study,
  seriesUid,
  active,
  onActivate,
  onDropSeries,
  onViewer,
}: {
  cell: number;
  host: ViewportHost;
  study: StudySession;
  seriesUid?: string;
  active: boolean;
  onActivate: () => void;
  onDropSeries: (uid: string) => void;
  onViewer: (v: StackViewer | undefined) => void;
}) {
  const element = useRef<HTMLDivElement>(null);
  const [viewer, setViewer] = useState<StackViewer>();
  const [index, setIndex] = useState(0);
  const [loaded, setLoaded] = useState('');
  const [wl, setWl] = useState('');
  useEffect(() => {
    const v = createStackViewer(element.current!, host.viewer);
    setViewer(v);
    onViewer(v);
    const offSlice = v.onSlice(setIndex);
    const offRender = v.onRender(() => {
      const st = v.state();
      setWl(
        st.center !== undefined && st.width !== undefined
          ? `W ${Math.round(st.width)} L ${Math.round(st.center)}`
          : '',
      );
    });
    const resize = new ResizeObserver(() => v.resize());
    resize.observe(element.current!);
    return () => {
      resize.disconnect();
      offSlice();
      offRender();
      onViewer(undefined);
      v.destroy();
    };
    // onViewer is a fresh closure each render; the viewport lives as long as the cell.
  }, [host]);

  const series = study.series.find((s) => s.uid === seriesUid);
  const refs = series?.refs ?? [];
  const stackKey = `${seriesUid ?? ''}|${refs.join(',')}`;
  const anyOpened = refs.some((r) => study.instances.get(r)?.opened);
  useEffect(() => {
    if (!viewer || !series || !anyOpened || stackKey === loaded) return;
    // A re-ordered stack keeps its image; a new one opens at its first slice in display order.
    const shown = viewer.state().imageId;
    const keep =
      loaded.startsWith(`${series.uid}|`) && shown
        ? refs.map((r) => imageIdOf(r)).indexOf(shown)
        : -1;
    const start = keep >= 0 ? keep : 0;
    setLoaded(stackKey);
    setIndex(start);
    void viewer
      .setImages(
        refs.map((r) => imageIdOf(r)),
        start,
      )
      .catch(() => undefined);
  }, [viewer, series, anyOpened, stackKey, loaded, refs]);

  const current = refs[index] !== undefined ? study.instances.get(refs[index]!) : undefined;
  const meta = current?.opened?.meta;
  const p = meta?.imagePosition
    ? axisPosition(meta.imagePosition, meta.imageOrientation)
    : undefined;
  return (
    <div
      className={`stage cell${active ? ' active' : ''}`}
      data-testid={`cell-${cell}`}
      data-active={active}
      onPointerDownCapture={onActivate}
      onFocusCapture={onActivate}
      onDragOver={allowSeriesDrop}
      onDrop={onSeriesDrop(onDropSeries)}
      onContextMenu={(e) => e.preventDefault()}
    >
      <div ref={element} className="viewport" data-testid={`cell-viewport-${cell}`} />
      {series ? (
        <>
          <div className="overlay tr">
            <span data-testid="cell-series">
              {`Se ${series.number ?? ''} ${series.description ?? ''}`.trim()}
            </span>
            {'\n'}
            <span data-testid="cell-slice">{`Im ${index + 1} / ${refs.length}`}</span>
            {'\n'}
            <span data-testid="cell-position" data-axis={p?.axis} data-value={p?.value}>
              {p ? `Pos ${p.label}` : ''}
            </span>
          </div>
          <div className="overlay bl" data-testid="cell-wl">
            {current?.opened?.meta.color ? '' : wl}
          </div>
          <div className="overlay br">
            <span style={{ pointerEvents: 'auto' }}>
              <Badge model={current?.badge} />
            </span>
          </div>
        </>
      ) : (
        <div className="stage-message">
          Click a series (this viewport is {active ? 'active' : 'not active: click it first'}) or
          drag its thumbnail here.
        </div>
      )}
    </div>
  );
}
