/**
 * What leaves in an export: a record's details with identifiers the export must not carry in clear
 * replaced. Policy decision records name their resource as the policy saw it (`study:<Study Instance
 * UID>`, or `patient:<patient id>`); an export shows the study as its reference (`studyRef`) and the
 * patient not at all. The paths replaced are listed, because the replaced details no longer hash to
 * the record's hash: such a record is checked against the chain, not from the export alone.
 */
import { studyRef } from './trail.ts';

export interface Exportable {
  readonly details: Readonly<Record<string, unknown>>;
  /** JSON paths of the values replaced (empty when the details are exported as recorded). */
  readonly redacted: readonly string[];
}

const RESOURCE = /^(study|series|patient):(.+)$/;

export function exportable(details: Readonly<Record<string, unknown>>): Exportable {
  const redacted: string[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => {
          const p = `${path}.${k}`;
          const m = k === 'resource' && typeof x === 'string' ? RESOURCE.exec(x) : null;
          if (!m) return [k, walk(x, p)];
          redacted.push(p);
          return [k, m[1] === 'study' ? `study-ref:${studyRef(m[2]!)}` : `${m[1]}:(redacted)`];
        }),
      );
    return v;
  };
  return { details: walk(details, 'details') as Record<string, unknown>, redacted };
}
