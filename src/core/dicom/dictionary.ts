/**
 * The DICOM data dictionary, taken from dcmjs (the field's maintained copy of PS3.6): value
 * representations for implicit-VR data and attribute names for people.
 */
import dcmjs from 'dcmjs';

const dict = dcmjs.data.DicomMetaDictionary.dictionary;

export const tagKey = (tag: number): string => {
  const h = (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
};

export const isPrivateTag = (tag: number): boolean => ((tag >>> 16) & 1) === 1;

/** The dictionary VR of a tag, or undefined if unknown. Ambiguous VRs come back as written in PS3.6. */
export function dictionaryVr(tag: number): string | undefined {
  const g = tag >>> 16;
  const e = tag & 0xffff;
  if (e === 0) return 'UL'; // group length
  if (g & 1) return e >= 0x10 && e <= 0xff ? 'LO' : undefined; // private creator / private data
  const entry = dict[tagKey(tag)];
  if (!entry) return undefined;
  const vr = entry.vr;
  if (vr === 'xs') return 'US or SS';
  if (vr === 'ox') return 'OB or OW';
  if (vr === 'lt') return 'US or OW';
  return vr.toUpperCase();
}

const names = new Map<number, string>();

/**
 * The attribute's keyword (remembered: the tag browser asks for the same ~100 names per image). Group
 * lengths (gggg,0000) are named as PS3.5 §7.2 and DCMTK name them: the file meta group's its own,
 * a private group's PrivateGroupLength, any other GenericGroupLength.
 */
export function tagName(tag: number): string {
  const e = tag & 0xffff;
  if (isPrivateTag(tag))
    return e === 0
      ? 'PrivateGroupLength'
      : e >= 0x10 && e <= 0xff
        ? 'PrivateCreator'
        : e < 0x10
          ? 'Unknown'
          : 'PrivateTag';
  let name = names.get(tag);
  if (name === undefined) {
    name = dict[tagKey(tag)]?.name ?? (e === 0 ? 'GenericGroupLength' : 'Unknown');
    if (names.size < 4096) names.set(tag, name);
  }
  return name;
}
