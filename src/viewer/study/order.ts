/**
 * Slice order of a series, as clinicians scroll it: by position along the slice normal (Image Position
 * Patient projected on Row × Column of Image Orientation Patient), ascending, as Cornerstone's own
 * stack utilities sort; by the listed z when only that is known; by Instance Number otherwise and to
 * break ties.
 */

export interface Slice {
  readonly ref: string;
  readonly number: number;
  /** The position along z the producer listed (unverified), or null. */
  readonly z: number | null;
  readonly position?: readonly [number, number, number];
  readonly orientation?: readonly [number, number, number, number, number, number];
}

function normalOf(o: Slice['orientation'] & object): [number, number, number] {
  const [a, b, c, d, e, f] = o;
  return [b * f - c * e, c * d - a * f, a * e - b * d];
}

export function sliceOrder(slices: readonly Slice[]): string[] {
  const first = slices[0];
  let key: (s: Slice) => number;
  if (first?.orientation && slices.every((s) => s.position && s.orientation)) {
    const n = normalOf(first.orientation);
    key = (s) => s.position![0] * n[0] + s.position![1] * n[1] + s.position![2] * n[2];
  } else if (slices.length > 0 && slices.every((s) => s.z !== null && Number.isFinite(s.z)))
    key = (s) => s.z!;
  else key = () => 0;
  return [...slices].sort((a, b) => key(a) - key(b) || a.number - b.number).map((s) => s.ref);
}
