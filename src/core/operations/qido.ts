/**
 * QIDO-RS at the producer hospital (PS3.18 §10.6, study and series search), carried as a session
 * operation like every other clinician request: the body names the QIDO-RS resource as its URL would
 * (`/studies?PatientID=…&StudyDate=…`, `/studies/{uid}/series?…`, `/series?…`), the answer is the
 * DICOM JSON array (PS3.18 F.2) of the matches — only among the studies the producer's policy lets
 * this clinician consult, as the study list. Isomorphic: the producer parses and matches with it, the
 * viewer builds its queries with it.
 */
import { ZtvError } from '../errors.ts';
import type { SearchAnswer } from './consultation.ts';
import { message, PURPOSE } from './contract.ts';

/** One attribute of a DICOM JSON object. */
export interface DicomJsonAttribute {
  readonly vr: string;
  readonly Value?: readonly (string | number | { readonly Alphabetic: string })[];
}
export type DicomJson = Readonly<Record<string, DicomJsonAttribute>>;

export const qido = message<{ matches: DicomJson[] }>()('qido', {
  type: 'object',
  required: ['purpose', 'resource'],
  additionalProperties: false,
  properties: {
    purpose: PURPOSE,
    resource: { type: 'string', minLength: 1, maxLength: 2048 },
    roleAssignments: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 8192 } },
    delegations: {
      type: 'array',
      maxItems: 4,
      items: { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 8192 } },
    },
  },
});

/** The attributes a query may match on, by keyword and by tag. */
export const QIDO_KEYS = {
  StudyInstanceUID: '0020000D',
  StudyDate: '00080020',
  StudyDescription: '00081030',
  ModalitiesInStudy: '00080061',
  PatientID: '00100020',
  PatientName: '00100010',
  PatientBirthDate: '00100030',
  SeriesInstanceUID: '0020000E',
  Modality: '00080060',
  SeriesNumber: '00200011',
  SeriesDescription: '0008103E',
} as const;
export type QidoKey = keyof typeof QIDO_KEYS;

const BY_TAG = new Map<string, QidoKey>(
  Object.entries(QIDO_KEYS).map(([k, t]) => [t, k as QidoKey]),
);

const STUDY_KEYS: readonly QidoKey[] = [
  'StudyInstanceUID',
  'StudyDate',
  'StudyDescription',
  'ModalitiesInStudy',
  'PatientID',
  'PatientName',
  'PatientBirthDate',
];
const SERIES_KEYS: readonly QidoKey[] = [
  'SeriesInstanceUID',
  'Modality',
  'SeriesNumber',
  'SeriesDescription',
];

export interface QidoQuery {
  readonly level: 'studies' | 'series';
  /** `/studies/{uid}/series`: the series of that study. */
  readonly study?: string;
  readonly match: Partial<Record<QidoKey, string>>;
  readonly fuzzy: boolean;
  readonly limit: number;
  readonly offset: number;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
/** The most matches one answer holds (and the default limit). */
export const QIDO_MAX = 1000;

const bad = (m: string) => new ZtvError('bad-input', m);

/**
 * Parses a QIDO-RS resource: its path (`/studies`, `/studies/{uid}/series`, `/series`) and its query
 * (matching keys by keyword or tag, `limit`, `offset`, `fuzzymatching`, `includefield` — every
 * attribute this service has is always included). Anything else is refused, with the key it names.
 */
export function parseQido(resource: string): QidoQuery {
  const q = resource.indexOf('?');
  const path = (q < 0 ? resource : resource.slice(0, q)).replace(/\/+$/, '');
  const params = new URLSearchParams(q < 0 ? '' : resource.slice(q + 1));
  let level: QidoQuery['level'];
  let study: string | undefined;
  const m = /^\/studies\/([^/]+)\/series$/.exec(path);
  if (path === '/studies') level = 'studies';
  else if (path === '/series') level = 'series';
  else if (m && UID.test(m[1]!) && m[1]!.length <= 64) {
    level = 'series';
    study = m[1];
  } else
    throw bad(`${path.slice(0, 80)}: QIDO-RS here is /studies, /studies/{uid}/series or /series`);
  const allowed = level === 'studies' ? STUDY_KEYS : [...STUDY_KEYS, ...SERIES_KEYS];
  const match: Partial<Record<QidoKey, string>> = {};
  let fuzzy = false;
  let limit = QIDO_MAX;
  let offset = 0;
  const count = (k: string, v: string, max: number) => {
    if (!/^\d{1,7}$/.test(v) || Number(v) > max) throw bad(`${k}=${v.slice(0, 20)}: 0 to ${max}`);
    return Number(v);
  };
  for (const [k, v] of params) {
    if (k === 'limit') limit = Math.max(1, count(k, v, QIDO_MAX));
    else if (k === 'offset') offset = count(k, v, 1_000_000);
    else if (k === 'fuzzymatching') fuzzy = v === 'true';
    else if (k === 'includefield') continue;
    else {
      const key = (BY_TAG.get(k.toUpperCase()) ?? k) as QidoKey;
      if (!allowed.includes(key))
        throw bad(`${k.slice(0, 64)}: not a matching key of ${level} here (${allowed.join(', ')})`);
      if (v.length > 64) throw bad(`${key}: a matching value is at most 64 characters`);
      if (match[key] !== undefined) throw bad(`${key} is given twice`);
      match[key] = v;
    }
  }
  if (match.StudyDate !== undefined && !/^(\d{8})?(-(\d{8})?)?$/.test(match.StudyDate))
    throw bad('StudyDate: YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be open)');
  return { level, ...(study ? { study } : {}), match, fuzzy, limit, offset };
}

/** Lower case, accents removed, DICOM name separators (^) as spaces, spaces collapsed. */
export const foldText = (s: string): string =>
  s
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[\^,=]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();

/** Wildcard matching (PS3.4 C.2.2.2.4: `*` any run, `?` one character), case-insensitive. */
function wildcard(pattern: string, value: string): boolean {
  const re = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${re}$`, 'is').test(value);
}

/**
 * Whether `value` matches the query value of `key`: a UID list (`\` or `,` separated), a date or date
 * range, a person name (wildcards; with fuzzy matching every word of the query begins a word of the
 * name, in any order: "dur bo" finds "DURAND^BOB"), or single-value text with wildcards.
 */
export function matches(key: QidoKey, query: string, value: string, fuzzy: boolean): boolean {
  if (query === '' || query === '*') return true;
  if (key === 'StudyInstanceUID' || key === 'SeriesInstanceUID')
    return query.split(/[\\,]/).includes(value);
  if (key === 'StudyDate' || key === 'PatientBirthDate') {
    if (!query.includes('-')) return value === query;
    const [from, to] = query.split('-') as [string, string];
    return (from === '' || value >= from) && (to === '' || value <= to) && value !== '';
  }
  if (key === 'ModalitiesInStudy') return value.split('\\').some((m) => wildcard(query, m));
  if (key === 'PatientName' && fuzzy) {
    const words = foldText(query.replace(/[*?]/g, ' ')).split(' ');
    const name = foldText(value).split(' ');
    return words.every((w) => name.some((n) => n.startsWith(w)));
  }
  if (key === 'PatientName') return wildcard(query.replace(/\^/g, ' '), value.replace(/\^/g, ' '));
  return wildcard(query, value);
}

/** A DICOM JSON attribute: absent values are sent as an attribute without a Value (PS3.18 F.2.5). */
export const attr = (vr: string, v: string | number | undefined): DicomJsonAttribute =>
  v === undefined || v === ''
    ? { vr }
    : { vr, Value: [vr === 'PN' ? { Alphabetic: String(v) } : v] };

/** The text of one attribute of a DICOM JSON object (a person name's alphabetic group). */
export function jsonText(o: DicomJson, key: QidoKey): string {
  const v = o[QIDO_KEYS[key]]?.Value?.[0];
  if (v === undefined) return '';
  return typeof v === 'object' ? v.Alphabetic : String(v);
}

/**
 * The matches of a query among the studies listed for the clinician, as DICOM JSON: at study level
 * the study, its patient and its counts; at series level each series with its study's UID (and, for
 * `/series`, its study's and patient's attributes). In the listing's order, `offset` and `limit` applied.
 */
export function qidoMatches(listing: SearchAnswer['studies'], q: QidoQuery): DicomJson[] {
  const ok = (key: QidoKey, value: string) =>
    q.match[key] === undefined || matches(key, q.match[key], value, q.fuzzy);
  const out: DicomJson[] = [];
  for (const s of listing) {
    const modalities = [
      ...new Set([...s.series.map((x) => x.modality), s.study.modality].filter((m) => m)),
    ];
    if (q.study !== undefined && q.study !== s.study.uid) continue;
    if (
      !ok('StudyInstanceUID', s.study.uid) ||
      !ok('StudyDate', s.study.date) ||
      !ok('StudyDescription', s.study.description) ||
      !ok('ModalitiesInStudy', modalities.join('\\')) ||
      !ok('PatientID', s.patient.id) ||
      !ok('PatientName', s.patient.name) ||
      !ok('PatientBirthDate', s.patient.birthDate)
    )
      continue;
    const study: Record<string, DicomJsonAttribute> = {
      [QIDO_KEYS.StudyDate]: attr('DA', s.study.date),
      [QIDO_KEYS.ModalitiesInStudy]: modalities.length
        ? { vr: 'CS', Value: modalities }
        : { vr: 'CS' },
      [QIDO_KEYS.StudyDescription]: attr('LO', s.study.description),
      [QIDO_KEYS.PatientName]: attr('PN', s.patient.name),
      [QIDO_KEYS.PatientID]: attr('LO', s.patient.id),
      [QIDO_KEYS.PatientBirthDate]: attr('DA', s.patient.birthDate),
      [QIDO_KEYS.StudyInstanceUID]: attr('UI', s.study.uid),
    };
    if (q.level === 'studies') {
      out.push({
        ...study,
        '00201206': attr('IS', s.series.length),
        '00201208': attr(
          'IS',
          s.series.reduce((n, x) => n + x.instances, 0),
        ),
      });
      continue;
    }
    for (const x of s.series) {
      if (
        !ok('SeriesInstanceUID', x.uid) ||
        !ok('Modality', x.modality) ||
        !ok('SeriesNumber', String(x.number)) ||
        !ok('SeriesDescription', x.description)
      )
        continue;
      out.push({
        ...(q.study === undefined ? study : { [QIDO_KEYS.StudyInstanceUID]: study['0020000D']! }),
        [QIDO_KEYS.Modality]: attr('CS', x.modality),
        [QIDO_KEYS.SeriesDescription]: attr('LO', x.description),
        [QIDO_KEYS.SeriesInstanceUID]: attr('UI', x.uid),
        [QIDO_KEYS.SeriesNumber]: attr('IS', x.number),
        '00201209': attr('IS', x.instances),
      });
    }
  }
  return out.slice(q.offset, q.offset + q.limit);
}

/**
 * What the viewer's study search box asks for a typed text: the studies whose patient ID contains
 * it, and those whose patient name holds every word of it at the start of one of its words (QIDO-RS
 * has no "or": two queries, their matches merged). Wildcards typed are taken as spaces.
 */
export function searchBoxQueries(text: string): string[] {
  const t = text
    .replace(/[*?\\]/g, ' ')
    .trim()
    .slice(0, 62);
  if (!t) return [];
  return [
    `/studies?PatientID=${encodeURIComponent(`*${t}*`)}`,
    `/studies?PatientName=${encodeURIComponent(t)}&fuzzymatching=true`,
  ];
}
