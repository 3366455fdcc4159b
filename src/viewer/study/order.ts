/**
 * Slice order of a series in radiology's display order: an axial series from the head down, a
 * sagittal one from the patient's right to the left, a coronal one from the front to the back — by
 * position along the slice normal (Image Position Patient projected on Row × Column of Image
 * Orientation Patient), the normal's sign chosen by the patient axis it mostly points along; from the
 * head down by the listed z when only that is known (the producer's listing); by Instance Number
 * otherwise and to break ties. The first slice in this order is the one a series opens at; the wheel
 * and the arrow keys go down the list.
 */

export interface Slice {
  readonly ref: string;
  readonly number: number;
  /** The position along z the producer listed (unverified), or null. */
  readonly position?: readonly [number, number, number];
  readonly z: number | null;
  readonly orientation?: readonly [number, number, number, number, number, number];
}

export function normalOf(
  o: readonly [number, number, number, number, number, number],
): [number, number, number] {
  const [a, b, c, d, e, f] = o;
  return [b * f - c * e, c * d - a * f, a * e - b * d];
}

/**
 * The direction display order runs along, in patient coordinates (DICOM LPS: +x left, +y posterior,
 * +z head), for slices of this orientation: towards the feet (axial), the patient's left (sagittal:
 * right first), the back (coronal: anterior first).
 */
export function displayDirection(
  o: readonly [number, number, number, number, number, number],
): [number, number, number] {
  const n = normalOf(o);
  const abs = n.map(Math.abs);
  const axis = abs.indexOf(Math.max(...abs));
  // z: head to feet is −z; x: right to left is +x; y: anterior to posterior is +y.
  const want = axis === 2 ? -1 : 1;
  const sign = Math.sign(n[axis]!) === want ? 1 : -1;
  return [n[0] * sign, n[1] * sign, n[2] * sign];
}

export function sliceOrder(slices: readonly Slice[]): string[] {
  const first = slices[0];
  let key: (s: Slice) => number;
  if (first?.orientation && slices.every((s) => s.position && s.orientation)) {
    const d = displayDirection(first.orientation);
    key = (s) => s.position![0] * d[0] + s.position![1] * d[1] + s.position![2] * d[2];
  } else if (slices.length > 0 && slices.every((s) => s.z !== null && Number.isFinite(s.z)))
    key = (s) => -s.z!;
  else key = () => 0;
  return [...slices].sort((a, b) => key(a) - key(b) || a.number - b.number).map((s) => s.ref);
}
