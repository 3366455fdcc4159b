/**
 * The study viewer: series list with thumbnails (the middle slice) and integrity summaries, toolbar
 * (window presets, mouse tool, invert, rotate, flip, fullscreen, reset, export), progress of the
 * transfer, the Cornerstone3D stack viewport with its overlays (patient, series, slice and its
 * position along the axis the slices step along, window, zoom, orientation markers, scale bar), the
 * integrity badge and the tampered tiles drawn over the image, and the side panels (integrity, tags,
 * auditor). The mouse is @cornerstonejs/tools' (cornerstone/viewer.ts): the left button drags the
 * chosen tool, the middle pans, the right zooms, the wheel scrolls. The keyboard: SHORTCUTS, `?`
 * shows them. A series opens at its first slice in display order (study/order.ts).
 */
import { cache, eventTarget } from '@cornerstonejs/core';
import { Enums as ToolEnums } from '@cornerstonejs/tools';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { describeProblem } from '../app/problems.ts';
import { saveFile } from '../audit/download.ts';
import type { ViewportHost } from '../cornerstone/host.ts';
import { parseImageId, registerZtImages, WARMUP_IMAGE_ID } from '../cornerstone/images.ts';
import {
  clearMeasurements,
  deleteMeasurement,
  listMeasurements,
  markUnverified,
  MEASURE_LABELS,
  renameMeasurement,
  undoMeasurement,
  type MeasureKind,
  type Measurement,
} from '../cornerstone/measurements.ts';
import { measurementReport } from '../cornerstone/sr-export.ts';
import type { EdgeLabels, PrimaryTool, StackViewer, ViewState } from '../cornerstone/viewer.ts';
import { entryIndex, stackEntries } from '../study/frames.ts';
import { displayDirection } from '../study/order.ts';
import type { InstanceView, SeriesView, StudySession } from '../study/session.ts';
import { useStudy } from '../study/useStudy.ts';
import { Badge, SeriesBadge } from './Badge.tsx';
import { pseudonymisedFor } from './badge-model.ts';
import { ExportNote } from './ExportNote.tsx';
import {
  allowSeriesDrop,
  LayoutCells,
  LayoutControls,
  onSeriesDrop,
  SERIES_MIME,
  useLayout,
} from './Layout.tsx';
import { MeasurementsPanel, type MeasurementRow } from './MeasurementsPanel.tsx';
import { MprPanel } from './MprPanel.tsx';
import { AuditorPanel, IntegrityPanel, TagPanel } from './panels.tsx';
import { ProblemBox } from './Problem.tsx';
import { Thumbnail } from './Thumbnail.tsx';

export const PRESETS = [
  { id: 'soft', label: 'Soft tissue', width: 400, center: 40, key: '1' },
  { id: 'lung', label: 'Lung', width: 1500, center: -600, key: '2' },
  { id: 'liver', label: 'Liver', width: 150, center: 90, key: '3' },
  { id: 'bone', label: 'Bone', width: 2500, center: 480, key: '4' },
  { id: 'brain', label: 'Brain', width: 80, center: 40, key: '5' },
] as const;

type Tool = PrimaryTool;

/** Keys choosing a measurement tool for the left button. */
const MEASURE_KEYS: Record<string, MeasureKind> = {
  l: 'length',
  a: 'angle',
  b: 'bidirectional',
  e: 'ellipse',
  t: 'rectangle',
  x: 'probe',
};

/** Every keyboard shortcut of the image viewer (the `?` help lists them). */
export const SHORTCUTS: readonly (readonly [string, string])[] = [
  ['↓ → / ↑ ←', 'next / previous slice (wheel: down = next)'],
  ['Page Down / Page Up', '10 slices on / back'],
  ['Home / End', 'first / last slice'],
  ...PRESETS.map((p) => [p.key, `${p.label} window (W ${p.width} L ${p.center})`] as const),
  ['w / p / z', 'left button: window/level, pan, zoom (middle button pans, right zooms)'],
  ['l / a / b', 'left button: length, angle, bidirectional (long and short axis)'],
  ['e / t / x', 'left button: ellipse ROI, rectangle ROI, probe'],
  ['Ctrl+Z', 'undo the last measurement change'],
  ['i', 'invert'],
  ['o / O', 'rotate 90° clockwise / anticlockwise'],
  ['h / v', 'flip horizontally / vertically'],
  ['c', 'cine: play / pause (rate in the toolbar)'],
  ['f', 'fullscreen'],
  ['r', 'reset the view'],
  ['?', 'this help (Esc closes it)'],
];

/** A position along the axis the slices step along, with that axis' patient letters (LPS). */
export function axisPosition(
  position: readonly [number, number, number],
  orientation: readonly [number, number, number, number, number, number] | undefined,
): { label: string; axis: 'x' | 'y' | 'z'; value: number } {
  const d = orientation ? displayDirection(orientation) : ([0, 0, -1] as const);
  const abs = d.map(Math.abs);
  const i = abs.indexOf(Math.max(...abs));
  const value = position[i]!;
  const [neg, pos] = (
    [
      ['R', 'L'],
      ['A', 'P'],
      ['F', 'H'],
    ] as const
  )[i]!;
  return {
    axis: (['x', 'y', 'z'] as const)[i]!,
    value,
    label: `${value < 0 ? neg : pos} ${Math.abs(value).toFixed(2)} mm`,
  };
}

/** A round scale-bar length (mm) at most a quarter of the viewport's width, and its length in pixels. */
export function scaleBar(
  mmPerPixel: number,
  widthPx: number,
): { mm: number; px: number } | undefined {
  const max = (widthPx / 4) * mmPerPixel;
  let best: number | undefined;
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) if (m <= max) best = m;
  return best ? { mm: best, px: best / mmPerPixel } : undefined;
}
type Panel = 'integrity' | 'measurements' | 'tags' | 'auditor';

const name = (n?: string): string => (n ? n.replace(/\^+/g, ' ').trim() : '');
const date = (d?: string): string =>
  d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : (d ?? '');

/** Tampered tiles of the image (frame) on screen, as canvas rectangles. */
function tileRects(viewer: StackViewer, inst?: InstanceView, frameNumber = 1) {
  const tiles = inst?.opened?.verdict.tiles.filter((t) => t.frame === frameNumber) ?? [];
  const out: { key: string; x: number; y: number; w: number; h: number }[] = [];
  for (const t of tiles) {
    const a = viewer.imageToCanvas(t.x, t.y);
    const b = viewer.imageToCanvas(t.x + t.width, t.y + t.height);
    if (!a || !b) continue;
    out.push({
      key: `${t.frame}.${t.index}`,
      x: Math.min(a[0], b[0]),
      y: Math.min(a[1], b[1]),
      w: Math.abs(b[0] - a[0]),
      h: Math.abs(b[1] - a[1]),
    });
  }
  return out;
}

/** The series whose first image was verified first: shown until the clinician picks another. */
function firstOpenedSeries(study: StudySession): string | undefined {
  return study.series.find((s) => s.refs.some((r) => study.instances.get(r)?.opened))?.uid;
}

/** Stops a cine whose viewport may be gone already (a layout made smaller). */
function tryStop(v: StackViewer): void {
  try {
    v.stop();
  } catch {
    // its element is disabled: nothing plays there any more
  }
}

function download(inst: InstanceView, series?: SeriesView): string | undefined {
  if (!inst.served) return;
  const name = `ztv-served-se${series?.number ?? 0}-im${inst.number}-${inst.cloudId.slice(0, 8)}.dcm`;
  saveFile({ name, type: 'application/dicom', text: inst.served as Uint8Array<ArrayBuffer> });
  return name;
}

export function StudyViewer({
  study,
  host,
  purpose,
  onRequestAgain,
  onClose,
}: {
  study: StudySession;
  /** The purpose of use the ticket was asked for (HL7 code), to name a pseudonymised opening. */
  purpose?: string;
  /** The sign-in's viewport, created and warmed up before any ticket (see ViewportHost). */
  host: ViewportHost;
  onRequestAgain: () => void;
  onClose: () => void;
}) {
  useStudy(study);
  const stage = useRef<HTMLDivElement>(null);
  const viewer = useRef<StackViewer | undefined>(undefined);
  const [seriesUid, setSeriesUid] = useState<string>();
  const [index, setIndex] = useState(0);
  const [stackKey, setStackKey] = useState('');
  const [view, setView] = useState<ViewState>();
  const [exported, setExported] = useState<string>();
  const [tiles, setTiles] = useState<ReturnType<typeof tileRects>>([]);
  const [tool, setTool] = useState<Tool>('wl');
  const [panel, setPanel] = useState<Panel>('integrity');
  const [loadError, setLoadError] = useState<string>();
  const [help, setHelp] = useState(false);
  /** Cine: the viewer playing (one at a time), and the rate in frames per second. */
  const [cineOn, setCineOn] = useState<StackViewer>();
  const [fps, setFps] = useState(10);
  const [edges, setEdges] = useState<EdgeLabels>();
  const [bar, setBar] = useState<{ mm: number; px: number }>();
  const indexRef = useRef(0);
  /** The series opened on its first verified slice: it moves to its first slice once that is open. */
  const homePending = useRef(false);
  const firstRender = useRef(false);
  /** An image to show once its series' stack is loaded (the "Show" of a tampered image). */
  const wantRef = useRef<string | undefined>(undefined);
  /**
   * Each series' thumbnail slice, chosen once (its first image opened): while the series streams, a
   * slice nearer the front may open later, and redrawing the thumbnail for each cost the page's thread.
   */
  const thumbs = useRef(new Map<string, string>());
  /** Viewports (1×1, 1×2, 2×2) and the series whose MPR is open (ui/Layout.tsx, ui/MprPanel.tsx). */
  const layout = useLayout(study);
  const [mprSeries, setMprSeries] = useState<string>();
  /** The keyboard and the toolbar act on the active viewport (the stage or a layout's cell). */
  const activeRef = useRef(0);
  activeRef.current = layout.active;
  const activeViewer = (): StackViewer | undefined =>
    activeRef.current === 0 ? viewer.current : layout.viewer(activeRef.current);
  /** The view of the active cell, when it is not the stage (the toolbar's pressed states). */
  const [cellView, setCellView] = useState<ViewState>();

  // The study's images feed the `zt:` loader; the transfer starts now.
  useEffect(() => {
    registerZtImages((ref) => study.get(ref), { get: (ref) => study.known(ref) });
    void study.start();
    return () => {
      void study.close();
      // Measurements name this study's images: they go with it.
      clearMeasurements();
      cache.purgeCache();
    };
  }, [study]);

  // Measurements drawn, edited or removed: the panel follows; one made on an image that is not
  // verified is coloured in the viewport.
  const [measureVersion, setMeasureVersion] = useState(0);
  useEffect(() => {
    const E = ToolEnums.Events;
    const bump = () => setMeasureVersion((n) => n + 1);
    const completed = (e: Event) => {
      const a = (
        e as CustomEvent<{
          annotation?: { annotationUID?: string; metadata?: { referencedImageId?: string } };
        }>
      ).detail.annotation;
      const id = a?.metadata?.referencedImageId;
      if (a?.annotationUID && id?.startsWith('zt:') && id !== WARMUP_IMAGE_ID) {
        const state = study.instances.get(parseImageId(id).ref)?.badge?.state;
        if (state !== 'verified') markUnverified(a.annotationUID);
      }
      bump();
    };
    const events = [E.ANNOTATION_ADDED, E.ANNOTATION_MODIFIED, E.ANNOTATION_REMOVED];
    for (const n of events) eventTarget.addEventListener(n, bump);
    eventTarget.addEventListener(E.ANNOTATION_COMPLETED, completed);
    return () => {
      for (const n of events) eventTarget.removeEventListener(n, bump);
      eventTarget.removeEventListener(E.ANNOTATION_COMPLETED, completed);
    };
  }, [study]);

  // The sign-in's Cornerstone viewport moves onto the stage; overlays follow every render.
  useEffect(() => {
    const v = host.viewer;
    host.attach(stage.current!);
    viewer.current = v;
    let frame = 0;
    const off = v.onRender(() => {
      const shown = v.state().imageId;
      if (!firstRender.current && shown && shown !== WARMUP_IMAGE_ID) {
        firstRender.current = true;
        performance.mark('ztv:first-render');
        study.shown();
      }
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setView(v.state());
        setEdges(v.edges());
        const mm = v.mmPerCanvasPixel();
        setBar(mm ? scaleBar(mm, v.element.clientWidth) : undefined);
        // The tiles of the image actually drawn (the slice index may already point further on).
        const id = v.state().imageId;
        const drawn = id && id !== WARMUP_IMAGE_ID ? parseImageId(id) : undefined;
        setTiles(
          tileRects(v, drawn ? study.instances.get(drawn.ref) : undefined, drawn?.frame ?? 1),
        );
      });
    });
    return () => {
      off();
      if (frame) cancelAnimationFrame(frame);
      host.park();
      viewer.current = undefined;
    };
  }, [host, study]);

  const shownSeries = seriesUid ?? firstOpenedSeries(study);
  const series = study.series.find((s) => s.uid === shownSeries);
  const refs = series?.refs ?? [];
  // The stack: each instance, a multi-frame one as its frames (study/frames.ts).
  const entries = useMemo(
    () => stackEntries(refs, (r) => study.instances.get(r)?.opened?.meta.frames),
    // The frame counts are known as instances open: the snapshot changes then.
    [refs, study, study.snapshot],
  );
  const entry = entries[index];
  const current = entry ? study.instances.get(entry.ref) : undefined;
  const currentRef = useRef<InstanceView | undefined>(undefined);
  currentRef.current = current;

  // The first series to have an image verified is shown, as soon as that image is.
  const firstOpened = useMemo(() => {
    for (const s of study.series) {
      const r = s.refs.find((x) => study.instances.get(x)?.opened);
      if (r) return { series: s.uid, ref: r };
    }
    return undefined;
  }, [study, study.snapshot]);

  // (Re)load the stack when the series, its order or its frames change, keeping the image on screen.
  const key = entries.map((e) => e.imageId).join(',');
  const anyOpened = refs.some((r) => study.instances.get(r)?.opened);
  useEffect(() => {
    const v = viewer.current;
    if (!v || !series || !anyOpened || key === stackKey) return;
    const wanted = wantRef.current && refs.includes(wantRef.current) ? wantRef.current : undefined;
    wantRef.current = undefined;
    // A re-ordered stack keeps the image on screen; a new one starts at its first slice in display
    // order, or, while that one is still on its way, at its first verified slice until it arrives.
    const keep =
      stackKey && currentRef.current && refs.includes(currentRef.current.ref)
        ? currentRef.current.ref
        : undefined;
    const home = study.instances.get(refs[0]!)?.opened ? refs[0] : undefined;
    const start =
      wanted ?? keep ?? home ?? refs.find((r) => study.instances.get(r)?.opened) ?? refs[0]!;
    if (!wanted && !keep) homePending.current = start !== refs[0];
    // The frame on screen stays when the stack is rebuilt around its instance.
    const shown = keep ? v.state().imageId : undefined;
    const frameId = shown && parseImageId(shown).ref === start ? shown : '';
    const i = Math.max(0, entryIndex(entries, frameId, start));
    setStackKey(key);
    setIndex(i);
    indexRef.current = i;
    study.focus(entries[i]!.ref);
    setLoadError(undefined);
    performance.mark('ztv:stack');
    v.setImages(
      entries.map((e) => e.imageId),
      i,
    ).catch((e: unknown) => setLoadError((e as Error).message));
  }, [series, key, anyOpened, stackKey, refs, entries, study]);

  const go = useCallback(
    (i: number, auto = false) => {
      const v = viewer.current;
      if (!v || entries.length === 0 || stackKey !== key) return;
      if (!auto) homePending.current = false;
      const n = Math.max(0, Math.min(entries.length - 1, i));
      if (n === indexRef.current) return;
      indexRef.current = n;
      setIndex(n);
      study.focus(entries[n]!.ref);
      setLoadError(undefined);
      v.show(n).catch((e: unknown) => {
        if (indexRef.current === n) setLoadError((e as Error).message);
      });
    },
    [entries, study, stackKey, key],
  );

  // The series' first slice in display order, once it is open, replaces the stand-in it opened on.
  const homeOpened = refs[0] !== undefined && !!study.instances.get(refs[0])?.opened;
  useEffect(() => {
    if (homePending.current && homeOpened && stackKey === key) {
      homePending.current = false;
      go(0, true);
    }
  }, [homeOpened, stackKey, key, go]);

  // The wheel (the stack scroll tool) moves the stack itself: the slice shown follows.
  const entriesRef = useRef(entries);
  entriesRef.current = entries;
  useEffect(() => {
    const v = viewer.current;
    if (!v) return;
    return v.onSlice((n) => {
      if (n === indexRef.current) return;
      homePending.current = false;
      indexRef.current = n;
      setIndex(n);
      const r = entriesRef.current[n]?.ref;
      if (r) study.focus(r);
    });
  }, [host, study]);

  // The toolbar's pressed states follow the active cell's view (the stage's is `view`).
  const activeCellViewer = layout.active === 0 ? undefined : layout.viewer(layout.active);
  useEffect(() => {
    const v = activeCellViewer;
    setCellView(v?.state());
    return v?.onRender(() => setCellView(v.state()));
  }, [activeCellViewer]);
  const activeView = layout.active === 0 ? view : cellView;

  /** Moves the active viewport to slice `to(current, count)` (clamped). */
  const step = (to: (i: number, n: number) => number) => {
    if (activeRef.current === 0) return go(to(indexRef.current, entries.length));
    const v = activeViewer();
    const n = v?.viewport.getImageIds().length ?? 0;
    if (!v || !n) return;
    const i = Math.max(0, Math.min(n - 1, to(v.index, n)));
    if (i !== v.index) v.show(i).catch(() => undefined);
  };
  const preset = (center: number, width: number) => activeViewer()?.setWindow(center, width);
  const invert = () => {
    const v = activeViewer();
    v?.setInvert(!v.state().invert);
  };
  const reset = () => activeViewer()?.reset();
  const rotate = (deg: number) => activeViewer()?.rotate(deg);
  const flip = (d: 'horizontal' | 'vertical') => activeViewer()?.flip(d);
  const choose = (t: Tool) => {
    setTool(t);
    // One tool group for every viewport of the layout: the left button's tool is theirs.
    viewer.current?.setPrimaryTool(t);
  };
  const playing = !!cineOn && cineOn === activeViewer();
  const cine = (play: boolean, rate = fps) => {
    const v = activeViewer();
    if (!v) return;
    if (cineOn && cineOn !== v) tryStop(cineOn);
    if (play) v.play(rate);
    else v.stop();
    setCineOn(play ? v : undefined);
  };
  const fullscreen = () => {
    if (document.fullscreenElement) void document.exitFullscreen();
    else void (activeViewer()?.element.parentElement ?? stage.current)?.requestFullscreen();
  };

  // Keyboard: scroll, presets, invert, reset (not while typing in a field).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (t && /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
      const v = activeViewer();
      if ((e.ctrlKey || e.metaKey) && e.key === 'z' && v) {
        undoMeasurement(v.element);
        v.viewport.render();
        e.preventDefault();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (help && (e.key === 'Escape' || e.key === '?')) {
        setHelp(false);
        e.preventDefault();
        return;
      }
      // Not while another tab or a dialog is in front of the viewer. (Not `offsetParent`: the stage in
      // fullscreen is fixed-positioned and has none, and its keys, `f` to leave, must still work.)
      if (!stage.current?.getClientRects().length || document.querySelector('[role=dialog]'))
        return;
      const by: Record<string, number> = {
        ArrowDown: 1,
        ArrowRight: 1,
        ArrowUp: -1,
        ArrowLeft: -1,
        PageDown: 10,
        PageUp: -10,
      };
      if (e.key in by) step((i) => i + by[e.key]!);
      else if (e.key === 'Home') step(() => 0);
      else if (e.key === 'End') step((_, n) => n - 1);
      else if (e.key === 'i') invert();
      else if (e.key === 'r') reset();
      else if (e.key === 'o') rotate(90);
      else if (e.key === 'O') rotate(-90);
      else if (e.key === 'h') flip('horizontal');
      else if (e.key === 'v') flip('vertical');
      else if (e.key === 'f') fullscreen();
      else if (e.key === 'c') cine(!playing);
      else if (e.key === 'w') choose('wl');
      else if (e.key === 'p') choose('pan');
      else if (e.key === 'z') choose('zoom');
      else if (e.key in MEASURE_KEYS) choose(MEASURE_KEYS[e.key]!);
      else if (e.key === '?') setHelp(true);
      else {
        const p = PRESETS.find((x) => x.key === e.key);
        if (!p) return;
        preset(p.center, p.width);
      }
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [go, entries.length, help, playing, fps, cineOn, layout.active]);

  // Cine on the stage stops when its series changes or the study closes.
  useEffect(() => {
    const v = viewer.current;
    return () => {
      v?.stop();
      setCineOn((c) => (c === v ? undefined : c));
    };
  }, [shownSeries]);

  // The measurements panel's rows: each measurement with the image it was made on.
  void measureVersion;
  const measureRows: MeasurementRow[] = listMeasurements().map((m) => {
    const ref = m.imageId.startsWith('zt:') ? parseImageId(m.imageId).ref : undefined;
    const inst = ref ? study.instances.get(ref) : undefined;
    const s = inst ? study.series.find((x) => x.uid === inst.series) : undefined;
    const at = s && ref ? s.refs.indexOf(ref) : -1;
    return {
      m,
      ...(s && at >= 0
        ? {
            where:
              `Se ${s.number ?? ''} ${s.description ?? ''}`.trim() +
              ` · Im ${at + 1} / ${s.refs.length}`,
          }
        : {}),
      ...(inst?.badge ? { badge: inst.badge } : {}),
    };
  });
  const jumpTo = (m: Measurement) => {
    const ref = parseImageId(m.imageId).ref;
    const inst = study.instances.get(ref);
    if (!inst) return;
    if (inst.series !== shownSeries) {
      wantRef.current = ref;
      setSeriesUid(inst.series);
    } else go(entryIndex(entries, m.imageId, ref));
  };

  const problem = study.failure
    ? describeProblem(study.failure.error, study.failure.step)
    : undefined;
  const meta =
    current?.opened?.meta ?? (firstOpened ? study.known(firstOpened.ref)?.meta : undefined);
  const total = study.instances.size;
  let received = 0;
  let opened = 0;
  for (const s of study.series) {
    received += s.counts.received;
    opened += s.counts.verified + s.counts.tampered + s.counts.unverifiable + s.counts.failed;
  }
  const color = !!current?.opened?.meta.color;
  const firstTampered = (s: SeriesView) =>
    s.refs.findIndex((r) => study.instances.get(r)?.badge?.state === 'tampered');
  const state = current?.badge?.state;

  return (
    <div className="viewer">
      <aside className="series-list" aria-label="Series">
        {study.series.map((s) => {
          // The middle slice once it is open; until then the first slice opened stands in.
          const middle = s.refs[Math.floor((s.refs.length - 1) / 2)];
          let thumbRef = thumbs.current.get(s.uid);
          if (thumbRef !== middle && middle && study.instances.get(middle)?.opened) {
            thumbRef = middle;
            thumbs.current.set(s.uid, thumbRef);
          } else if (!thumbRef || !s.refs.includes(thumbRef)) {
            thumbRef = s.refs.find((r) => study.instances.get(r)?.opened);
            if (thumbRef) thumbs.current.set(s.uid, thumbRef);
          }
          const t = firstTampered(s);
          return (
            <div key={s.uid}>
              <button
                className="series-item"
                aria-pressed={s.uid === shownSeries}
                data-testid="series-item"
                draggable
                onDragStart={(e) => e.dataTransfer.setData(SERIES_MIME, s.uid)}
                onClick={() =>
                  layout.active === 0 ? setSeriesUid(s.uid) : layout.place(layout.active, s.uid)
                }
              >
                <Thumbnail inst={thumbRef ? study.known(thumbRef) : undefined} />
                <div>
                  {s.number ? `${s.number}. ` : ''}
                  {s.description || s.modality}
                </div>
                <div className="muted">
                  {s.modality} · {s.counts.total} image{s.counts.total === 1 ? '' : 's'}
                </div>
              </button>
              <SeriesBadge counts={s.counts} />
              {t >= 0 && (
                <button
                  style={{ marginLeft: 4 }}
                  data-testid="show-tampered"
                  onClick={() => {
                    if (s.uid !== shownSeries) {
                      wantRef.current = s.refs[t];
                      setSeriesUid(s.uid);
                    } else go(entryIndex(entries, '', s.refs[t]));
                  }}
                >
                  Show
                </button>
              )}
            </div>
          );
        })}
      </aside>
      <section className="center">
        <div className="toolbar" role="toolbar" aria-label="Image tools">
          {PRESETS.map((p) => (
            <button
              key={p.id}
              data-testid={`preset-${p.id}`}
              disabled={color}
              title={`W ${p.width} / L ${p.center} (key ${p.key})`}
              onClick={() => preset(p.center, p.width)}
            >
              {p.label}
            </button>
          ))}
          <span className="sep" />
          {(
            [
              ['wl', 'W/L'],
              ['pan', 'Pan'],
              ['zoom', 'Zoom'],
            ] as const
          ).map(([id, label]) => (
            <button
              key={id}
              aria-pressed={tool === id}
              data-testid={`tool-${id}`}
              onClick={() => choose(id)}
            >
              {label}
            </button>
          ))}
          <span className="sep" />
          {(Object.keys(MEASURE_LABELS) as MeasureKind[]).map((id) => (
            <button
              key={id}
              aria-pressed={tool === id}
              data-testid={`tool-${id}`}
              title={`${MEASURE_LABELS[id]} (${Object.keys(MEASURE_KEYS).find((k) => MEASURE_KEYS[k] === id)})`}
              onClick={() => choose(id)}
            >
              {MEASURE_LABELS[id]}
            </button>
          ))}
          <span className="sep" />
          <button data-testid="invert" aria-pressed={!!activeView?.invert} onClick={invert}>
            Invert
          </button>
          <button
            data-testid="rotate"
            title="Rotate 90° clockwise (o; O anticlockwise)"
            onClick={() => rotate(90)}
          >
            Rotate
          </button>
          <button
            data-testid="flip-h"
            aria-pressed={!!activeView?.flipHorizontal}
            title="Flip horizontally (h)"
            onClick={() => flip('horizontal')}
          >
            Flip H
          </button>
          <button
            data-testid="flip-v"
            aria-pressed={!!activeView?.flipVertical}
            title="Flip vertically (v)"
            onClick={() => flip('vertical')}
          >
            Flip V
          </button>
          <button
            data-testid="cine"
            aria-pressed={playing}
            title="Cine: play or pause the stack (c)"
            onClick={() => cine(!playing)}
          >
            {playing ? 'Pause' : 'Play'}
          </button>
          <label className="cine-rate" title="Cine rate, frames per second">
            <input
              type="number"
              data-testid="cine-fps"
              aria-label="Frames per second"
              min={1}
              max={60}
              value={fps}
              onChange={(e) => {
                const n = Math.max(1, Math.min(60, Math.round(Number(e.target.value) || 1)));
                setFps(n);
                cineOn?.play(n);
              }}
            />
            fps
          </label>
          <button data-testid="fullscreen" title="Fullscreen (f)" onClick={fullscreen}>
            Fullscreen
          </button>
          <button data-testid="reset" title="Reset the view (r)" onClick={reset}>
            Reset
          </button>
          <button
            data-testid="shortcuts"
            title="Keyboard shortcuts (?)"
            aria-expanded={help}
            onClick={() => setHelp(!help)}
          >
            ?
          </button>
          <span className="sep" />
          <LayoutControls layout={layout} />
          <button
            data-testid="mpr"
            disabled={
              !series ||
              series.counts.verified +
                series.counts.tampered +
                series.counts.unverifiable +
                series.counts.failed <
                series.counts.total
            }
            title="Axial, sagittal and coronal views with crosshairs, once every slice of this series is open"
            onClick={() => setMprSeries(series?.uid)}
          >
            MPR
          </button>
          <span className="sep" />
          <button
            data-testid="export"
            disabled={!current?.served}
            title="Downloads this image exactly as the cloud served it: still encrypted and sealed, with the trace of your ticket. The restored original never leaves the viewer."
            onClick={() => current && setExported(download(current, series))}
          >
            Export (traced)
          </button>
          <span className="sep" />
          <button onClick={onClose}>Close study</button>
        </div>
        {exported && (
          <ExportNote
            file={exported}
            trace={study.answer.trace}
            onDismiss={() => setExported(undefined)}
          />
        )}
        <div className="progress" data-testid="progress" data-done={study.done}>
          <div
            className="bar"
            role="progressbar"
            aria-valuemin={0}
            aria-valuemax={total}
            aria-valuenow={opened}
            aria-label="Images verified"
          >
            <div
              className="received"
              style={{ width: `${(100 * received) / Math.max(1, total)}%` }}
            />
            <div className="opened" style={{ width: `${(100 * opened) / Math.max(1, total)}%` }} />
          </div>
          <span>
            {study.done
              ? `${opened} of ${total} images received and checked`
              : `received ${received} / ${total} · checked ${opened} / ${total}`}
          </span>
        </div>
        {problem && (
          <ProblemBox
            problem={problem}
            actions={
              problem.next === 'request-again' || problem.next === 'retry'
                ? [{ label: 'Request access again', run: onRequestAgain }]
                : []
            }
          />
        )}
        <div className={`layout-grid layout-${layout.kind}`} data-testid="layout">
          <div
            ref={stage}
            className={`stage ${state === 'tampered' ? 'tampered' : state === 'unverifiable' ? 'unverifiable' : ''}${layout.count > 1 && layout.active === 0 ? ' active' : ''}`}
            data-testid="cell-0"
            data-active={layout.active === 0}
            onPointerDownCapture={() => layout.setActive(0)}
            onWheelCapture={() => layout.setActive(0)}
            onFocusCapture={() => layout.setActive(0)}
            onDragOver={allowSeriesDrop}
            onDrop={onSeriesDrop((uid) => {
              setSeriesUid(uid);
              layout.setActive(0);
            })}
            onContextMenu={(e) => e.preventDefault()}
          >
            {current && (
              <>
                {current.opened?.verdict.disclosure === 'pseudonymised' ? (
                  // The producer released the pixels without the identity: the clear header's dummy
                  // values are no patient's, so the overlay says what this opening is instead.
                  <div
                    className="overlay tl"
                    data-testid="overlay-patient"
                    data-disclosure="pseudonymised"
                  >
                    {[
                      pseudonymisedFor(purpose),
                      "Patient's identity withheld by the producer hospital",
                    ].join('\n')}
                  </div>
                ) : (
                  <div className="overlay tl" data-testid="overlay-patient">
                    {[
                      name(meta?.patientName) || 'Unnamed patient',
                      meta?.patientId ?? '',
                      [date(meta?.studyDate), meta?.studyDescription].filter(Boolean).join(' · '),
                    ].join('\n')}
                  </div>
                )}
                <div className="overlay tr">
                  <span data-testid="overlay-series">
                    {`Se ${series?.number ?? ''} ${series?.description ?? ''}`.trim()}
                  </span>
                  {'\n'}
                  <span data-testid="overlay-slice">{`Im ${(entry?.slice ?? 0) + 1} / ${refs.length}`}</span>
                  {entry && entry.frames > 1 && (
                    <span data-testid="overlay-frame" data-frame={entry.frame}>
                      {` · Fr ${entry.frame} / ${entry.frames}`}
                    </span>
                  )}
                  {'\n'}
                  <span data-testid="overlay-instance">
                    {current.opened?.meta.instanceNumber !== undefined
                      ? `Instance ${current.opened.meta.instanceNumber}`
                      : ''}
                  </span>
                  {'\n'}
                  {(() => {
                    const m = current.opened?.meta;
                    const p = m?.imagePosition
                      ? axisPosition(m.imagePosition, m.imageOrientation)
                      : undefined;
                    return (
                      <span
                        data-testid="overlay-position"
                        data-axis={p?.axis}
                        data-value={p?.value}
                        title="Position of this slice along the axis the slices step along (R/L, A/P, F/H: the patient's right/left, anterior/posterior, feet/head)"
                      >
                        {p ? `Pos ${p.label}` : ''}
                      </span>
                    );
                  })()}
                </div>
                <div className="overlay bl" data-testid="overlay-wl">
                  {view?.center !== undefined && view.width !== undefined && !color
                    ? `W ${Math.round(view.width)} L ${Math.round(view.center)}`
                    : ''}
                  {view ? `\nZoom ${Math.round(view.zoom * 100)}%` : ''}
                </div>
                {edges && current.opened?.meta.imageOrientation && (
                  <>
                    <div className="overlay marker top" data-testid="marker-top">
                      {edges.top}
                    </div>
                    <div className="overlay marker bottom" data-testid="marker-bottom">
                      {edges.bottom}
                    </div>
                    <div className="overlay marker left" data-testid="marker-left">
                      {edges.left}
                    </div>
                    <div className="overlay marker right" data-testid="marker-right">
                      {edges.right}
                    </div>
                  </>
                )}
                {bar && current.opened?.meta.pixelSpacing && (
                  <div
                    className="overlay scale"
                    data-testid="scale-bar"
                    data-mm={bar.mm}
                    data-px={bar.px.toFixed(2)}
                  >
                    <div className="scale-line" style={{ width: `${bar.px}px` }} />
                    {current.opened.meta.spacingSource === 'imager'
                      ? `${bar.mm} mm (Imager Pixel Spacing)`
                      : `${bar.mm} mm`}
                  </div>
                )}
                <div className="overlay br">
                  <span style={{ pointerEvents: 'auto' }}>
                    <Badge
                      model={current.badge}
                      pending={current.error ? 'Unverifiable — not received' : undefined}
                    />
                  </span>
                </div>
              </>
            )}
            {state === 'tampered' && (
              <>
                <svg className="tiles" aria-label="Tampered tiles">
                  {tiles.map((t) => (
                    <rect
                      key={t.key}
                      data-testid="tampered-tile"
                      x={t.x}
                      y={t.y}
                      width={t.w}
                      height={t.h}
                    />
                  ))}
                </svg>
                <div className="stamp">TAMPERED</div>
              </>
            )}
            {!current?.opened && !problem && (
              <div className="stage-message">
                {current?.error
                  ? `This image cannot be displayed: ${current.error}`
                  : loadError
                    ? `This image cannot be displayed: ${loadError}`
                    : firstOpened
                      ? `Receiving image ${index + 1}…`
                      : 'Waiting for the first verified image…'}
              </div>
            )}
          </div>
          <LayoutCells layout={layout} host={host} study={study} mainSeries={shownSeries} />
          {mprSeries && study.series.some((s) => s.uid === mprSeries) && (
            <MprPanel
              key={mprSeries}
              study={study}
              series={study.series.find((s) => s.uid === mprSeries)!}
              onClose={() => setMprSeries(undefined)}
            />
          )}
        </div>
        {help && (
          <div
            className="shortcut-help"
            role="dialog"
            aria-label="Keyboard shortcuts"
            data-testid="shortcut-help"
          >
            <h2>Keyboard shortcuts</h2>
            <p data-testid="shortcut-target">
              They act on the active viewport (outlined in a layout: a click, the wheel or Tab makes
              a viewport active); with Sync on, the others of its frame of reference follow its
              slice position and window.
            </p>
            <table>
              <tbody>
                {SHORTCUTS.map(([k, what]) => (
                  <tr key={k}>
                    <th scope="row">
                      <kbd>{k}</kbd>
                    </th>
                    <td>{what}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <button onClick={() => setHelp(false)}>Close</button>
          </div>
        )}
      </section>
      <aside className="side" aria-label="Details">
        <div className="tabs" role="tablist">
          {(
            [
              ['integrity', 'Integrity'],
              ['measurements', 'Measurements'],
              ['tags', 'Tags'],
              ['auditor', 'Auditor'],
            ] as const
          ).map(([id, label]) => (
            <button
              key={id}
              role="tab"
              aria-selected={panel === id}
              aria-pressed={panel === id}
              data-testid={`panel-${id}`}
              onClick={() => setPanel(id)}
            >
              {label}
            </button>
          ))}
        </div>
        <div className="body">
          {panel === 'integrity' && (
            <IntegrityPanel inst={current} expectedTrace={study.answer.trace} />
          )}
          {panel === 'measurements' && (
            <MeasurementsPanel
              key={measureVersion}
              rows={measureRows}
              onJump={jumpTo}
              onRename={(m, label) => {
                renameMeasurement(m.uid, label);
                viewer.current?.viewport.render();
                setMeasureVersion((n) => n + 1);
              }}
              onDelete={(m) => {
                deleteMeasurement(m.uid);
                viewer.current?.viewport.render();
              }}
              onUndo={() => {
                if (!viewer.current) return;
                undoMeasurement(viewer.current.element);
                viewer.current.viewport.render();
                setMeasureVersion((n) => n + 1);
              }}
              onExportSr={() => measurementReport((ref) => study.known(ref))}
            />
          )}
          {panel === 'tags' && <TagPanel inst={current} />}
          {panel === 'auditor' && <AuditorPanel study={study} inst={current} />}
        </div>
      </aside>
    </div>
  );
}
