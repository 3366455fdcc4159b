/**
 * The tag browser's rows: the restored header (one row per element, items of a sequence beneath it,
 * one level deeper) with sequences collapsed until opened, and a filter that shows every matching
 * element with the sequences and items that hold it. Pure: tested without a browser.
 */
import type { TagRow } from '../pipeline/protocol.ts';

export interface ShownRow {
  /** Index in the header's rows: the key of a sequence or item to open or close. */
  readonly index: number;
  readonly row: TagRow;
  /** A sequence or item with rows beneath it. */
  readonly parent: boolean;
  readonly open: boolean;
}

/** The rows to show: those under an opened parent; with a filter, the matches and their parents. */
export function shownRows(
  rows: readonly TagRow[],
  opened: ReadonlySet<number>,
  filter = '',
): ShownRow[] {
  const f = filter.trim().toLowerCase();
  const parent = (i: number) => i + 1 < rows.length && rows[i + 1]!.depth > rows[i]!.depth;
  if (f) {
    const keep = new Set<number>();
    const path: number[] = [];
    rows.forEach((r, i) => {
      while (path.length && rows[path.at(-1)!]!.depth >= r.depth) path.pop();
      const hit =
        r.tag.toLowerCase().includes(f) ||
        r.name.toLowerCase().includes(f) ||
        r.value.toLowerCase().includes(f);
      if (hit) for (const j of [...path, i]) keep.add(j);
      path.push(i);
    });
    return [...keep]
      .sort((a, b) => a - b)
      .map((i) => ({ index: i, row: rows[i]!, parent: parent(i), open: parent(i) }));
  }
  const out: ShownRow[] = [];
  // Depth below which rows are hidden by a closed parent (Infinity: none).
  let hiddenBelow = Infinity;
  rows.forEach((r, i) => {
    if (r.depth <= hiddenBelow) hiddenBelow = Infinity;
    else return;
    const p = parent(i);
    const open = p && opened.has(i);
    out.push({ index: i, row: r, parent: p, open });
    if (p && !open) hiddenBelow = r.depth;
  });
  return out;
}
