/**
 * The images a series' stack shows, in display order: one per single-frame instance, and every frame
 * of a multi-frame instance in frame order (a cine loop, an enhanced CT/MR) once that instance is open
 * (its Number of Frames is known only then; until then it stands as its first frame). Scrolling and cine
 * go through this list; the overlay numbers the instance and, for a multi-frame one, its frame.
 */
import { imageIdOf } from '../cornerstone/images.ts';

export interface StackEntry {
  readonly ref: string;
  /** 1-based frame of the instance, and the instance's frame count (1 for a single-frame one). */
  readonly frame: number;
  readonly frames: number;
  /** Position of the instance in the series' display order. */
  readonly slice: number;
  readonly imageId: string;
}

export function stackEntries(
  refs: readonly string[],
  framesOf: (ref: string) => number | undefined,
): StackEntry[] {
  const out: StackEntry[] = [];
  refs.forEach((ref, slice) => {
    const frames = Math.max(1, Math.floor(framesOf(ref) ?? 1));
    for (let frame = 1; frame <= frames; frame++)
      out.push({ ref, frame, frames, slice, imageId: imageIdOf(ref, frame, frames) });
  });
  return out;
}

/** Where an image id stands in the stack, else where its instance's first image does, else -1. */
export function entryIndex(entries: readonly StackEntry[], imageId: string, ref?: string): number {
  const i = entries.findIndex((e) => e.imageId === imageId);
  return i >= 0 || ref === undefined ? i : entries.findIndex((e) => e.ref === ref);
}
