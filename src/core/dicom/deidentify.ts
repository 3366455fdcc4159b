/**
 * Header confidentiality: applies the Basic Application Level Confidentiality Profile (PS3.15 E.1)
 * to a data set and keeps the original of every element it changes, so that the originals can travel
 * encrypted (Encrypted Attributes Sequence) and be restored exactly. UIDs are replaced consistently
 * within the data set; private attributes, curves, overlay planes and group lengths are removed.
 */
import { randomBytes } from '../bytes.ts';
import { BASIC_PROFILE_ACTIONS } from './confidentiality-profile.ts';
import { DataSet, encodeText, TEXT_VRS, type DicomElement } from './dataset.ts';
import { T } from './tags.ts';

type Action = 'X' | 'Z' | 'D' | 'U';

const ACTIONS = new Map<number, string>();
for (const [action, tags] of Object.entries(BASIC_PROFILE_ACTIONS))
  for (const t of tags) ACTIONS.set(t >>> 0, action);

/** The profile's combined codes, resolved to the action that keeps a data set valid. */
function actionFor(el: DicomElement): Action | undefined {
  const g = el.tag >>> 16;
  const e = el.tag & 0xffff;
  if (g & 1) return 'X'; // private attributes
  if (g >= 0x5000 && g <= 0x50ff) return 'X'; // curve data
  // Overlay planes go whole: the profile removes Overlay Data and Comments (60xx,3000/4000), and a
  // plane described without its data reads as one embedded in the pixels' unused bits (GDCM warns).
  if (g >= 0x6000 && g <= 0x60ff) return 'X';
  // Group lengths (retired, PS3.5 7.2) would tell the lengths of the values removed from the group.
  if (e === 0x0000 && g !== 0x0002) return 'X';
  const code = ACTIONS.get(el.tag >>> 0);
  switch (code) {
    case undefined:
      return undefined;
    case 'X':
    case 'Z':
    case 'D':
    case 'U':
      return code;
    case 'X/Z':
      return 'Z';
    case 'X/Z/U*':
      return el.vr === 'UI' ? 'U' : 'Z';
    default: // X/D, X/Z/D, Z/D
      return 'D';
  }
}

/** A fresh UID under the 2.25 arc (PS3.5 B.2): a random 128-bit number in decimal. */
export function newUid(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40; // UUID version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // variant
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return `2.25.${n.toString()}`;
}

const DUMMY_TEXT: Record<string, string> = {
  DA: '19000101',
  TM: '000000',
  DT: '19000101000000',
  AS: '000D',
  IS: '0',
  DS: '0',
  UR: '',
};

function dummy(el: DicomElement, uid: (old: string) => string): DicomElement {
  if (el.items) return { tag: el.tag, vr: 'SQ', items: [] };
  if (el.vr === 'UI') return replaceUid(el, uid);
  if (TEXT_VRS.has(el.vr))
    return { tag: el.tag, vr: el.vr, value: encodeText(el.vr, DUMMY_TEXT[el.vr] ?? 'ANONYMIZED') };
  return { tag: el.tag, vr: el.vr, value: new Uint8Array(el.value?.length ?? 0) };
}

function replaceUid(el: DicomElement, uid: (old: string) => string): DicomElement {
  const old = new TextDecoder('latin1')
    .decode(el.value ?? new Uint8Array(0))
    .replace(/[\0 ]+$/, '');
  if (old === '') return el;
  const next = old
    .split('\\')
    .map((u) => uid(u.trim()))
    .join('\\');
  return { tag: el.tag, vr: 'UI', value: encodeText('UI', next) };
}

const sameBytes = (a?: Uint8Array, b?: Uint8Array): boolean =>
  a === b || (!!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]));

/** Applies the profile to one element; returns null to remove it, or the element (maybe itself). */
function clean(el: DicomElement, uid: (old: string) => string): DicomElement | null {
  const action = actionFor(el);
  if (action === 'X') return null;
  if (action === 'Z')
    return el.items
      ? { tag: el.tag, vr: 'SQ', items: [] }
      : { tag: el.tag, vr: el.vr, value: new Uint8Array(0) };
  if (action === 'D') return dummy(el, uid);
  if (action === 'U') return el.vr === 'UI' ? replaceUid(el, uid) : dummy(el, uid);
  if (el.items) {
    let changed = false;
    const items = el.items.map((item) => {
      const r = cleanDataSet(item, uid);
      changed ||= r.changed;
      return r.ds;
    });
    return changed ? { tag: el.tag, vr: 'SQ', items } : el;
  }
  return el;
}

function cleanDataSet(
  ds: DataSet,
  uid: (old: string) => string,
): { ds: DataSet; changed: boolean } {
  const out = new DataSet();
  let changed = false;
  for (const el of ds.elements()) {
    const c = clean(el, uid);
    if (c !== el) changed = true;
    if (c) out.set(c);
  }
  return { ds: out, changed };
}

export interface Deidentified {
  /** What may travel in clear. */
  readonly clear: DataSet;
  /** The original of every top-level element that was changed or removed. */
  readonly originals: DataSet;
  /** Elements added by de-identification that the original did not have (removed on restore). */
  readonly added: readonly number[];
  /** Old UID → new UID, for the File Meta. */
  readonly uidMap: ReadonlyMap<string, string>;
}

/** The de-identification markers this module adds. */
export const MARKER_TAGS: readonly number[] = [
  T.PatientIdentityRemoved,
  T.DeidentificationMethod,
  T.DeidentificationMethodCodeSequence,
];

export const DEIDENTIFICATION_METHOD = 'ZTV: PS3.15 Basic Profile; originals in (0400,0500)';

export function deidentify(ds: DataSet): Deidentified {
  const uidMap = new Map<string, string>();
  const uid = (old: string): string => {
    let n = uidMap.get(old);
    if (!n) uidMap.set(old, (n = newUid()));
    return n;
  };
  const clear = new DataSet();
  const originals = new DataSet();
  for (const el of ds.elements()) {
    const c = clean(el, uid);
    if (c !== el) originals.set(el);
    if (c) clear.set(c);
  }
  const code = new DataSet();
  code.setText(T.CodeValue, 'SH', '113100');
  code.setText(T.CodingSchemeDesignator, 'SH', 'DCM');
  code.setText(T.CodeMeaning, 'LO', 'Basic Application Confidentiality Profile');
  const markers: DicomElement[] = [
    { tag: T.PatientIdentityRemoved, vr: 'CS', value: encodeText('CS', 'YES') },
    { tag: T.DeidentificationMethod, vr: 'LO', value: encodeText('LO', DEIDENTIFICATION_METHOD) },
    { tag: T.DeidentificationMethodCodeSequence, vr: 'SQ', items: [code] },
  ];
  const added: number[] = [];
  for (const m of markers) {
    const before = ds.get(m.tag);
    if (!before) added.push(m.tag);
    else if (!originals.has(m.tag) && !(m.value && sameBytes(before.value, m.value)))
      originals.set(before);
    clear.set(m);
  }
  return { clear, originals, added, uidMap };
}

/** Undoes `deidentify`: `clear` without the added markers, with every original put back. */
export function reidentify(clear: DataSet, originals: DataSet, added: readonly number[]): DataSet {
  const out = clear.clone();
  for (const t of added) out.delete(t);
  for (const el of originals.elements()) out.set(el);
  return out;
}
