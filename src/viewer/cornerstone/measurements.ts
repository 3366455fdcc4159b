/**
 * Measurements on @cornerstonejs/tools' annotation tools (length, angle, bidirectional, elliptical and
 * rectangular ROI, probe): which tools, how their computed statistics read (`describeStats`, pure), the
 * measurements of a study as a list (`listMeasurements`) with the image each was made on, and the
 * operations of the measurements panel (rename, delete, undo). Units come from Cornerstone: mm and mm²
 * from Pixel Spacing, "px" where the image has none (the metadata provider says so), HU for CT.
 */
import { utilities } from '@cornerstonejs/core';
import {
  AngleTool,
  BidirectionalTool,
  EllipticalROITool,
  LengthTool,
  ProbeTool,
  RectangleROITool,
  annotation as csAnnotation,
  type Types as ToolTypes,
} from '@cornerstonejs/tools';

export type MeasureKind = 'length' | 'angle' | 'bidirectional' | 'ellipse' | 'rectangle' | 'probe';

export const MEASURE_TOOLS: Record<MeasureKind, string> = {
  length: LengthTool.toolName,
  angle: AngleTool.toolName,
  bidirectional: BidirectionalTool.toolName,
  ellipse: EllipticalROITool.toolName,
  rectangle: RectangleROITool.toolName,
  probe: ProbeTool.toolName,
};

export const MEASURE_CLASSES = [
  LengthTool,
  AngleTool,
  BidirectionalTool,
  EllipticalROITool,
  RectangleROITool,
  ProbeTool,
] as const;

export const MEASURE_LABELS: Record<MeasureKind, string> = {
  length: 'Length',
  angle: 'Angle',
  bidirectional: 'Bidirectional',
  ellipse: 'Ellipse ROI',
  rectangle: 'Rectangle ROI',
  probe: 'Probe',
};

const kindOf = (toolName: string): MeasureKind | undefined =>
  (Object.keys(MEASURE_TOOLS) as MeasureKind[]).find((k) => MEASURE_TOOLS[k] === toolName);

type Stats = Record<string, unknown>;

const num = (x: unknown): number | undefined =>
  typeof x === 'number' && Number.isFinite(x) ? x : undefined;
const fmt = (x: number | undefined, digits = 1): string =>
  x === undefined ? '—' : x.toFixed(digits).replace(/^-/, '−');

/**
 * A length or area unit as Cornerstone gives it, in words: its projection calibration ("mm Proj",
 * from Imager Pixel Spacing alone) is named for what it is; "px" (no spacing) stays px.
 */
export function unitLabel(unit: unknown): string {
  const u = typeof unit === 'string' ? unit : '';
  return u.replace(/^(\S+) Proj$/, '$1 (Imager Pixel Spacing)');
}

/** One line of values per measurement, with the units Cornerstone computed them in. */
export function describeStats(kind: MeasureKind, s: Stats | undefined): string {
  if (!s) return 'not computed yet';
  switch (kind) {
    case 'length':
      return `${fmt(num(s.length), 2)} ${unitLabel(s.unit)}`.trim();
    case 'angle':
      return typeof s.angle === 'number' ? `${fmt(s.angle, 1)}°` : 'incomplete';
    case 'bidirectional':
      return `long ${fmt(num(s.length), 2)} × short ${fmt(num(s.width), 2)} ${unitLabel(s.unit)}`.trim();
    case 'ellipse':
    case 'rectangle': {
      const u = s.modalityUnit ? ` ${String(s.modalityUnit)}` : '';
      return (
        `mean ${fmt(num(s.mean))}${u}, SD ${fmt(num(s.stdDev))}, min ${fmt(num(s.min))}, ` +
        `max ${fmt(num(s.max))}, area ${fmt(num(s.area), 2)} ${unitLabel(s.areaUnit)}`.trim()
      );
    }
    case 'probe': {
      const v = Array.isArray(s.value) ? s.value.map(Number).join(', ') : fmt(num(s.value), 1);
      return `${v}${s.modalityUnit ? ` ${String(s.modalityUnit)}` : ''}`;
    }
  }
}

/** The numbers behind a measurement, for tests and the SR export (undefined where not computed). */
export function statsOf(a: ToolTypes.Annotation): Stats | undefined {
  const id = a.metadata?.referencedImageId;
  const cached = (a.data as { cachedStats?: Record<string, Stats> }).cachedStats;
  return id && cached ? cached[`imageId:${id}`] : undefined;
}

export interface Measurement {
  readonly uid: string;
  readonly kind: MeasureKind;
  readonly label: string;
  readonly imageId: string;
  readonly value: string;
  readonly stats?: Stats;
}

/** Every measurement drawn so far, oldest first. */
export function listMeasurements(): Measurement[] {
  const out: Measurement[] = [];
  for (const a of csAnnotation.state.getAllAnnotations()) {
    const kind = a.metadata ? kindOf(a.metadata.toolName) : undefined;
    const imageId = a.metadata?.referencedImageId;
    if (!kind || !imageId || !a.annotationUID) continue;
    const stats = statsOf(a);
    out.push({
      uid: a.annotationUID,
      kind,
      label: (a.data as { label?: string }).label ?? '',
      imageId,
      value: describeStats(kind, stats),
      ...(stats ? { stats } : {}),
    });
  }
  return out;
}

/** Deleted measurements, newest last, for undo. */
const deleted: ToolTypes.Annotation[] = [];

export function renameMeasurement(uid: string, label: string): void {
  const a = csAnnotation.state.getAnnotation(uid);
  if (!a) return;
  (a.data as { label?: string }).label = label.slice(0, 64);
}

export function deleteMeasurement(uid: string): void {
  const a = csAnnotation.state.getAnnotation(uid);
  if (!a) return;
  deleted.push(a);
  csAnnotation.state.removeAnnotation(uid);
}

/**
 * Undoes the last deletion made in the panel, else the tools' last drawing or edit (Cornerstone's
 * history of annotation changes).
 */
export function undoMeasurement(element: HTMLDivElement): void {
  const a = deleted.pop();
  if (a) {
    csAnnotation.state.addAnnotation(a, element);
    return;
  }
  utilities.HistoryMemo.DefaultHistoryMemo.undo();
}

/** Colours a measurement made on an image that is not verified, in the viewport. */
export function markUnverified(uid: string): void {
  csAnnotation.config.style.setAnnotationStyles(uid, {
    color: 'rgb(248, 81, 73)',
    colorHighlighted: 'rgb(255, 123, 114)',
    colorSelected: 'rgb(255, 123, 114)',
    lineDash: '6,3',
  });
}

/** Forgets every measurement (a study closes: they name its images). */
export function clearMeasurements(): void {
  deleted.length = 0;
  csAnnotation.state.removeAllAnnotations();
}
