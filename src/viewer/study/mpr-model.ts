/**
 * Whether a series can form a volume for multiplanar reformatting, and the integrity summary of that
 * volume. Plain data (no DOM, no Cornerstone): tested in Node, used by the MPR view.
 *
 * A volume is a stack of parallel slices of one size and pixel spacing, stepping at one spacing
 * along their normal. Anything else would be drawn as if it were such a stack, at the wrong place:
 * it is refused with a sentence saying why, naming the slices.
 */
import type { DisplayMeta } from '../pipeline/display.ts';
import type { BadgeState } from '../ui/badge-model.ts';

/** One slice: its place in display order, its geometry (from the restored header) and its badge. */
export interface MprSlice extends Pick<
  DisplayMeta,
  | 'instanceNumber'
  | 'rows'
  | 'columns'
  | 'frames'
  | 'color'
  | 'pixelSpacing'
  | 'imagePosition'
  | 'imageOrientation'
> {
  /** The slice's place in the series' display order, from 1. */
  readonly slice: number;
  /** The slice's integrity badge; undefined while it is not open. */
  readonly state?: BadgeState;
  /** The slice has no pixels: not received, or its worker failed. */
  readonly failed?: boolean;
}

export type VolumeCheck =
  { readonly ok: true; readonly spacing: number } | { readonly ok: false; readonly reason: string };

/** Tolerances: direction cosines, and slice spacing (mm, or this fraction of the spacing). */
const COSINE_TOLERANCE = 1e-3;
const SPACING_TOLERANCE_MM = 0.02;
const SPACING_TOLERANCE_FRACTION = 0.01;

const name = (s: MprSlice) =>
  `slice ${s.slice}${s.instanceNumber !== undefined ? ` (instance ${s.instanceNumber})` : ''}`;

const dot = (a: readonly number[], b: readonly number[]) =>
  a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

/** Whether these slices, in display order, form a volume; if not, why not. */
export function checkVolume(slices: readonly MprSlice[]): VolumeCheck {
  const refuse = (reason: string): VolumeCheck => ({ ok: false, reason });
  if (slices.length === 0) return refuse('This series has no image.');
  const first = slices[0]!;
  if (slices.length === 1)
    return refuse(
      first.frames > 1
        ? 'This series is one multi-frame image: MPR is built from a series of single-frame slices.'
        : 'This series is a single image: a volume needs a stack of slices.',
    );
  const failed = slices.filter((s) => s.failed);
  if (failed.length)
    return refuse(
      `${cap(failed.map(name).join(', '))} could not be opened: the volume would have a hole.`,
    );
  const notOpen = slices.filter((s) => s.state === undefined);
  if (notOpen.length)
    return refuse(
      `Not every slice is open yet (${notOpen.length} of ${slices.length} still on their way).`,
    );
  const multi = slices.find((s) => s.frames > 1);
  if (multi) return refuse(`${cap(name(multi))} is a multi-frame image: not a stack of slices.`);
  if (first.color) return refuse('Colour images do not form a volume of modality values.');
  for (const s of slices) {
    if (!s.imagePosition || !s.imageOrientation || !s.pixelSpacing)
      return refuse(
        `${cap(name(s))} has no Image Position, Image Orientation or Pixel Spacing: its place in space is unknown.`,
      );
  }
  const o = first.imageOrientation!;
  const row = o.slice(0, 3);
  const col = o.slice(3, 6);
  const normal = [
    row[1]! * col[2]! - row[2]! * col[1]!,
    row[2]! * col[0]! - row[0]! * col[2]!,
    row[0]! * col[1]! - row[1]! * col[0]!,
  ];
  for (const s of slices) {
    if (s.imageOrientation!.some((c, i) => Math.abs(c - o[i]!) > COSINE_TOLERANCE))
      return refuse(
        `Mixed orientation: ${name(s)} is not parallel to ${name(first)}; a volume needs parallel slices.`,
      );
    if (s.rows !== first.rows || s.columns !== first.columns)
      return refuse(
        `${cap(name(s))} is ${s.columns}×${s.rows}, ${name(first)} ${first.columns}×${first.rows}: the slices differ in size.`,
      );
    if (s.pixelSpacing!.some((v, i) => Math.abs(v - first.pixelSpacing![i]!) > 1e-4))
      return refuse(`${cap(name(s))} has another pixel spacing than ${name(first)}.`);
  }
  // Distances along the normal, in display order; in-plane offsets (a gantry tilt) are refused too.
  const p0 = first.imagePosition!;
  const along = slices.map((s) => {
    const d = [0, 1, 2].map((i) => s.imagePosition![i]! - p0[i]!);
    return { s, z: dot(d, normal), inPlane: Math.hypot(dot(d, row), dot(d, col)) };
  });
  const tilted = along.find((a) => a.inPlane > SPACING_TOLERANCE_MM + 1e-3 * Math.abs(a.z));
  if (tilted)
    return refuse(
      `${cap(name(tilted.s))} is offset within the slice plane (a tilted gantry): the slices do not stack along their normal.`,
    );
  const sorted = [...along].sort((a, b) => a.z - b.z);
  const steps = sorted.slice(1).map((a, i) => ({ a: sorted[i]!, b: a, d: a.z - sorted[i]!.z }));
  const same = steps.find((x) => x.d < SPACING_TOLERANCE_MM);
  if (same)
    return refuse(
      `${cap(name(same.a.s))} and ${name(same.b.s)} lie at the same position: a volume needs one slice per position.`,
    );
  // The usual step is the median one: a missing slice shows as one step twice as long.
  const median = [...steps].sort((a, b) => a.d - b.d)[Math.floor(steps.length / 2)]!.d;
  const tolerance = Math.max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_FRACTION * median);
  const odd = steps.find((x) => Math.abs(x.d - median) > tolerance);
  if (odd)
    return refuse(
      `Irregular spacing: ${odd.d.toFixed(2)} mm between ${name(odd.a.s)} and ${name(odd.b.s)}, ${median.toFixed(2)} mm between the others (a missing slice?).`,
    );
  const spacing = (sorted[sorted.length - 1]!.z - sorted[0]!.z) / (sorted.length - 1);
  return { ok: true, spacing };
}

export interface MprBadge {
  readonly state: BadgeState;
  /** Starts with Verified / Tampered / Unverifiable, as every badge does. */
  readonly title: string;
}

/** The volume's badge: Verified only if every slice is; otherwise the slices that are not, named. */
export function mprBadge(slices: readonly MprSlice[]): MprBadge {
  const tampered = slices.filter((s) => s.state === 'tampered');
  const unverifiable = slices.filter((s) => s.state !== 'tampered' && s.state !== 'verified');
  if (!tampered.length && !unverifiable.length)
    return { state: 'verified', title: `Verified — all ${slices.length} slices` };
  const list = (xs: readonly MprSlice[]) => xs.map(name).join(', ');
  const parts = [
    ...(tampered.length ? [`tampered: ${list(tampered)}`] : []),
    ...(unverifiable.length ? [`unverifiable: ${list(unverifiable)}`] : []),
  ];
  return tampered.length
    ? { state: 'tampered', title: `Tampered — ${parts.join('; ')}` }
    : { state: 'unverifiable', title: `Unverifiable — ${parts.join('; ')}` };
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
