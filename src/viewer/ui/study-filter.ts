/**
 * The study list's search box: the studies the producer's policy listed for this clinician, narrowed
 * in the browser by patient ID or name. The producer's search has no free-text query on purpose: the
 * policy filters the list, and a typed name or ID never leaves the browser for a search (the request
 * by patient ID is a separate, logged act). Pure: tested without a browser.
 */

export interface Listed {
  readonly patient: { readonly id: string; readonly name: string };
}

/** Lower case, accents removed, DICOM name separators (^) as spaces, spaces collapsed. */
const fold = (s: string): string =>
  s
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[\^,]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();

/**
 * The entries whose patient ID contains the query, or whose name holds every word of it at the start
 * of one of its words ("dur bo" finds "DURAND^BOB"); an empty query keeps everything.
 */
export function filterStudies<T extends Listed>(studies: readonly T[], query: string): T[] {
  const q = fold(query);
  if (!q) return [...studies];
  const words = q.split(' ');
  return studies.filter((s) => {
    if (fold(s.patient.id).includes(q)) return true;
    const name = fold(s.patient.name).split(' ');
    return words.every((w) => name.some((n) => n.startsWith(w)));
  });
}
