/**
 * The measurements panel: every measurement with its value, series and slice, what it rests on (the
 * integrity verdict of the image it was made on: verified pixels, or which check failed), jump to it,
 * rename, delete, undo. Plain props: the study viewer resolves each measurement's image.
 */
import { useState } from 'react';
import { MEASURE_LABELS, type Measurement } from '../cornerstone/measurements.ts';
import type { MeasurementReportFile } from '../cornerstone/sr-export.ts';
import { saveFile } from '../audit/download.ts';
import type { BadgeModel } from './badge-model.ts';

export interface MeasurementRow {
  readonly m: Measurement;
  /** "Se 2 · Im 14 / 150", or undefined when the image is not in the study any more. */
  readonly where?: string;
  readonly badge?: BadgeModel;
}

/** What a measurement's values rest on, in words (the panel's integrity line). */
export function restsOn(badge: BadgeModel | undefined): string {
  if (!badge) return 'Not verified: the image it was made on has no verdict';
  if (badge.state === 'verified') return 'Rests on verified pixels';
  const why = badge.failed.map((c) => c.detail).join('; ') || badge.lines.join('; ');
  return badge.state === 'tampered'
    ? `Made on a Tampered image: ${why || badge.title}`
    : `Made on an Unverifiable image: ${why || badge.title}`;
}

/** The measurement's numbers and units as JSON (primitive fields only: no pixel lists). */
function statsJson(stats: Record<string, unknown> | undefined): string {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(stats ?? {}))
    if (typeof x === 'number' || typeof x === 'string') out[k] = x;
  return JSON.stringify(out);
}

export function MeasurementsPanel({
  rows,
  onJump,
  onRename,
  onDelete,
  onUndo,
  onExportSr,
}: {
  rows: readonly MeasurementRow[];
  onJump: (m: Measurement) => void;
  onRename: (m: Measurement, label: string) => void;
  onDelete: (m: Measurement) => void;
  onUndo: () => void;
  /** Builds the measurements' DICOM SR (the panel saves it and says what it is). */
  onExportSr: () => Promise<MeasurementReportFile>;
}) {
  const [note, setNote] = useState<{ ok: boolean; text: string }>();
  const exportSr = async () => {
    try {
      const sr = await onExportSr();
      const name = `ztv-measurements-${stamp(new Date())}.dcm`;
      saveFile({ name, type: 'application/dicom', text: sr.bytes as Uint8Array<ArrayBuffer> });
      const unverified = rows.filter((r) => r.badge?.state !== 'verified').length;
      setNote({ ok: true, text: srNote(name, sr, unverified) });
    } catch (e) {
      setNote({ ok: false, text: `The SR could not be made: ${(e as Error).message}.` });
    }
  };
  return (
    <div data-testid="measurements">
      <div className="measure-head">
        <span className="muted">
          {rows.length === 0
            ? 'No measurements yet: choose a tool in the toolbar and draw on the image.'
            : `${rows.length} measurement${rows.length === 1 ? '' : 's'}`}
        </span>
        <button data-testid="measure-undo" title="Undo (Ctrl+Z)" onClick={onUndo}>
          Undo
        </button>
        <button
          data-testid="measure-export-sr"
          disabled={rows.length === 0}
          title="Saves the measurements as a DICOM Structured Report (TID 1500) on this computer; nothing is sent"
          onClick={() => void exportSr()}
        >
          Export SR
        </button>
      </div>
      {note && (
        <div
          className={note.ok ? 'measure-note' : 'measure-note measure-bad'}
          role="status"
          data-testid="sr-note"
        >
          {note.text}
        </div>
      )}
      <ol className="measure-list">
        {rows.map(({ m, where, badge }, i) => (
          <li
            key={m.uid}
            data-testid="measurement"
            data-kind={m.kind}
            data-integrity={badge?.state ?? 'none'}
            data-stats={statsJson(m.stats)}
            className={badge?.state === 'verified' ? '' : 'measure-bad'}
          >
            <div className="measure-title">
              <input
                aria-label={`Name of measurement ${i + 1}`}
                data-testid="measure-name"
                defaultValue={m.label}
                placeholder={`${MEASURE_LABELS[m.kind]} ${i + 1}`}
                maxLength={64}
                onBlur={(e) => {
                  if (e.currentTarget.value !== m.label) onRename(m, e.currentTarget.value);
                }}
                onKeyDown={(e) => {
                  if (e.key === 'Enter') e.currentTarget.blur();
                }}
              />
            </div>
            <div className="measure-value" data-testid="measure-value">
              {m.value}
            </div>
            <div className="muted">
              {MEASURE_LABELS[m.kind]}
              {where ? ` · ${where}` : ''}
            </div>
            <div className="measure-rests" data-testid="measure-rests">
              {badge?.state === 'verified' ? '✓ ' : '⚠ '}
              {restsOn(badge)}
            </div>
            <div className="measure-actions">
              <button data-testid="measure-jump" onClick={() => onJump(m)}>
                Show
              </button>
              <button data-testid="measure-delete" onClick={() => onDelete(m)}>
                Delete
              </button>
            </div>
          </li>
        ))}
      </ol>
    </div>
  );
}

const pad = (n: number) => String(n).padStart(2, '0');
/** Local date and time in a file name: no patient identifier goes into it. */
const stamp = (d: Date) =>
  `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-` +
  `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;

/** What the saved SR is, in words. */
export function srNote(name: string, sr: MeasurementReportFile, unverified: number): string {
  const n = sr.measurements;
  const images = sr.instances.length;
  return (
    `Saved ${name}: a DICOM Structured Report (TID 1500 measurement report) of ${n} ` +
    `measurement${n === 1 ? '' : 's'} on ${images} image${images === 1 ? '' : 's'}, named by their ` +
    `SOP Instance UIDs. It was made in this browser and sent nowhere. Unlike the traced image ` +
    `export it is not encrypted: it carries the patient's name and ID, so keep it as you would a ` +
    `report.` +
    (unverified > 0
      ? ` ${unverified} of the measurements were made on images that are not verified.`
      : '')
  );
}
