/**
 * Layouts of the study viewer: 1×1, 1×2 or 2×2 viewports. The first is the study viewer's own stage
 * (its toolbar, keyboard and side panels follow it); the others are stack viewports in the same
 * rendering engine and tool group (the same mouse tools), each with its series, slice, position and
 * integrity badge. A click, the wheel or focus in a viewport makes it the active one (outlined): the
 * keyboard and the toolbar act on it, a click on a thumbnail puts that series into it, and a thumbnail
 * dragged onto a viewport puts it there. Viewports showing one frame of reference scroll together by
 * position and share window/level while synchronisation is on (the default; cornerstone/sync.ts, the
 * toolbar switches it): the active viewport drives, the others follow.
 */
import { useEffect, useMemo, useRef, useState, type DragEvent } from 'react';
import type { ViewportHost } from '../cornerstone/host.ts';
import { imageIdOf, parseImageId } from '../cornerstone/images.ts';
import { createLayoutSync, type LayoutSync, type SyncMember } from '../cornerstone/sync.ts';
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
  /** Scrolling by position and window/level synchronised (on by default). */
  readonly sync: boolean;
  /** The synchronizers of the layout (LayoutCells keeps them up to date). */
  readonly syncer: LayoutSync;
  setKind(kind: LayoutKind): void;
  /** Makes a cell the active one, and the one that drives the others (at once: before its move). */
  setActive(cell: number): void;
  setSync(on: boolean): void;
  /** Puts a series into a cell other than the stage. */
  place(cell: number, seriesUid: string): void;
  /** The viewer of a cell, once made (0: the stage's). */
  viewer(cell: number): StackViewer | undefined;
  register(cell: number, viewer: StackViewer | undefined): void;
}

/** Where a `zt:` image lies, from its restored header (none without a position and orientation). */
function geometryIn(study: StudySession) {
  return (imageId: string) => {
    if (!imageId.startsWith('zt:')) return undefined;
    const m = study.known(parseImageId(imageId).ref)?.meta;
    return m?.imagePosition && m.imageOrientation
      ? { position: m.imagePosition, orientation: m.imageOrientation }
      : undefined;
  };
}

export function useLayout(study: StudySession): LayoutState {
  const [kind, setKindState] = useState<LayoutKind>('1x1');
  const [active, setActiveState] = useState(0);
  const [series, setSeries] = useState<(string | undefined)[]>([]);
  const [sync, setSync] = useState(true);
  const viewers = useRef(new Map<number, StackViewer>());
  const syncer = useMemo(() => createLayoutSync(geometryIn(study)), [study]);
  useEffect(() => () => syncer.destroy(), [syncer]);
  const count = LAYOUTS[kind];
  const setActive = (cell: number) => {
    setActiveState(cell);
    syncer.drive(viewers.current.get(cell)?.viewportId);
  };
  return {
    kind,
    count,
    active: active < count ? active : 0,
    series,
    sync,
    syncer,
    setKind(k) {
      setKindState(k);
      if (active >= LAYOUTS[k]) setActive(0);
    },
    setActive,
    setSync,
    viewer: (cell) => viewers.current.get(cell),
    register(cell, v) {
      if (v) viewers.current.set(cell, v);
      else viewers.current.delete(cell);
    },
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
        title="Synchronise scrolling (by position) and window/level between viewports of one frame of reference: the active viewport drives"
        onClick={() => layout.setSync(!layout.sync)}
      >
        {layout.sync ? 'Sync on' : 'Sync off'}
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
  useEffect(() => {
    layout.register(0, host.viewer);
    return () => layout.register(0, undefined);
    // register is stable in effect (it writes the layout's map of viewers).
  }, [host]);
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
  // The active viewport drives (layout.setActive already made it so, before its first move).
  const driver = layout.active === 0 ? host.viewer.viewportId : viewers[layout.active]?.viewportId;
  const key = JSON.stringify([layout.sync, members, driver]);
  const { syncer } = layout;
  useEffect(() => {
    const [on, list, drives] = JSON.parse(key) as [boolean, SyncMember[], string | undefined];
    syncer.update(list, on);
    syncer.drive(drives);
  }, [key, syncer]);
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
        onViewer={(v) => {
          layout.register(i, v);
          setViewers((vs) => {
            const next = [...vs];
            next[i] = v;
            return next;
          });
        }}
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
      onWheelCapture={onActivate}
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
