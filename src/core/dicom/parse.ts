/**
 * Reads DICOM bytes (Part 10 files, or bare data sets without File Meta) into a DataSet whose
 * values are little-endian bytes. dicom-parser does the tokenising; this module decides the
 * encoding, supplies VRs for implicit data from the dictionary, swaps big-endian values, inflates
 * deflated data sets, and turns every parser failure into one clear ZtvError.
 */
import dicomParser from 'dicom-parser';
import { ZtvError } from '../errors.ts';
import { inflateCapped } from '../inflate.ts';
import { DataSet, tagString, VR_WORD, type DicomElement } from './dataset.ts';
import { dictionaryVr } from './dictionary.ts';
import { T, TS } from './tags.ts';

export interface ParsedDicom {
  /** File Meta Information (empty for a bare data set). */
  readonly meta: DataSet;
  readonly dataset: DataSet;
  /** Transfer syntax of the pixel data (and of the data set encoding). */
  readonly transferSyntax: string;
  readonly hasFileMeta: boolean;
  /**
   * Where the value of native (7FE0,0010) Pixel Data starts in the input bytes, when the data set
   * is neither deflated nor big endian: lets the cloud rewrite the trace in place.
   */
  readonly pixelDataOffset?: number;
  /** Things a strict reader would reject but we read anyway, said in words. */
  readonly warnings: string[];
}

const KNOWN_VRS = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
]);

type Encoding = { explicit: boolean; littleEndian: boolean; deflated: boolean };

function encodingOf(ts: string): Encoding {
  if (ts === TS.ImplicitLittle) return { explicit: false, littleEndian: true, deflated: false };
  if (ts === TS.ExplicitBig) return { explicit: true, littleEndian: false, deflated: false };
  if (ts === TS.DeflatedExplicitLittle)
    return { explicit: true, littleEndian: true, deflated: true };
  return { explicit: true, littleEndian: true, deflated: false };
}

/** Whether data in transfer syntax `ts` is read as Explicit VR Little Endian (unknown UIDs are). */
export function readsAsExplicitLittle(ts: string): boolean {
  const e = encodingOf(ts);
  return e.explicit && e.littleEndian && !e.deflated;
}

function parserMessage(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && 'exception' in e)
    return String((e as { exception: unknown }).exception);
  if (e instanceof Error) return e.message;
  return String(e);
}

function toZtvError(e: unknown, what: string): ZtvError {
  if (e instanceof ZtvError) return e;
  const msg = parserMessage(e).replace(/^dicomParser[.:]\s*[\w]*:?\s*/i, '');
  if (/overrun|out of range|beyond|past the end|truncat|maxPosition/i.test(msg))
    return new ZtvError(
      'truncated',
      `${what} is truncated: an element runs past the end of the data (${msg})`,
    );
  // dicom-parser failing does not prove the file invalid (GH177 was valid and unread until the
  // big-endian path above): say what is known, that this parser cannot read it.
  return new ZtvError(
    'not-dicom',
    `${what} cannot be read by this parser (dicom-parser), as invalid or unsupported DICOM: ${msg}`,
  );
}

const isVrText = (b: Uint8Array, o: number): boolean =>
  o + 1 < b.length && KNOWN_VRS.has(String.fromCharCode(b[o]!, b[o + 1]!));

/** Guesses where and how a bare data set (no preamble, no DICM) starts. */
function sniffBareDataSet(b: Uint8Array): { offset: number; ts: string } | undefined {
  // Some writers leave a stray padding byte or two before the first element: tolerate up to 3.
  for (let o = 0; o <= 3 && o + 8 <= b.length; o++) {
    const le = b[o]! | (b[o + 1]! << 8);
    const be = (b[o]! << 8) | b[o + 1]!;
    const plausible = (g: number): boolean => g === 0x0002 || g === 0x0008 || g === 0x0010;
    if (plausible(le))
      return { offset: o, ts: isVrText(b, o + 4) ? TS.ExplicitLittle : TS.ImplicitLittle };
    if (plausible(be) && isVrText(b, o + 4)) return { offset: o, ts: TS.ExplicitBig };
  }
  return undefined;
}

/** End of the File Meta per (0002,0000) File Meta Information Group Length, else the whole input. */
function metaEndByGroupLength(b: Uint8Array): number {
  const isGroupLength =
    b.length >= 144 &&
    b[132] === 0x02 &&
    b[133] === 0x00 &&
    b[134] === 0x00 &&
    b[135] === 0x00 &&
    b[136] === 0x55 && // 'U'
    b[137] === 0x4c; // 'L'
  if (!isGroupLength) return b.length;
  const len = new DataView(b.buffer, b.byteOffset + 140, 4).getUint32(0, true);
  return Math.min(b.length, 144 + len);
}

export function isPart10(b: Uint8Array): boolean {
  return (
    b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d
  );
}

export interface ParseOptions {
  /** Read the input as a bare data set in this transfer syntax (no preamble, no File Meta). */
  readonly bareSyntax?: string;
  /**
   * Keep native little-endian pixel data as a view into `bytes` instead of a copy (half a megabyte
   * per CT slice): for readers that only read it, and leave `bytes` alone while they use the data set.
   */
  readonly viewPixelData?: boolean;
  /**
   * The most a Deflated Explicit VR Little Endian data set may inflate to, in bytes (128 MiB by
   * default, the producer's largest instance): beyond it the file is refused before it is all
   * inflated, so a small file cannot make the reader hold gigabytes.
   */
  readonly maxInflated?: number;
}

/** The default of `ParseOptions.maxInflated`. */
export const MAX_INFLATED = 128 * 1024 * 1024;

export function parseDicom(
  bytes: Uint8Array,
  what = 'the file',
  options: ParseOptions = {},
): ParsedDicom {
  if (!(bytes instanceof Uint8Array))
    throw new ZtvError('bad-input', 'parseDicom needs a Uint8Array');
  if (bytes.length === 0) throw new ZtvError('not-dicom', `${what} is empty`);
  const warnings: string[] = [];
  let meta = new DataSet();
  let ts: string;
  let start: number;
  let hasFileMeta: boolean;

  if (isPart10(bytes)) {
    hasFileMeta = true;
    let metaRaw: dicomParser.DataSet;
    try {
      // Bound the File Meta by its group length when it has one: some writers leave a second
      // group-0002 block at the start of the data set, which must not override the real one.
      metaRaw = dicomParser.readPart10Header(bytes.subarray(0, metaEndByGroupLength(bytes)), {
        untilTag: 'x00030000',
      });
    } catch (e) {
      throw toZtvError(e, `the File Meta Information of ${what}`);
    }
    // dicom-parser reads one element past the group when the data set that follows is implicit.
    for (const key of Object.keys(metaRaw.elements))
      if (!key.startsWith('x0002')) delete metaRaw.elements[key];
    meta = convert(metaRaw, { explicit: true, littleEndian: true, deflated: false }, warnings, 0);
    const metaTs = meta.text(T.TransferSyntaxUID);
    if (!metaTs)
      throw new ZtvError(
        'not-dicom',
        `${what} has File Meta Information without a Transfer Syntax UID (0002,0010)`,
      );
    ts = metaTs;
    start = 132;
    for (const el of Object.values(metaRaw.elements))
      start = Math.max(start, el.dataOffset + el.length);
  } else if (options.bareSyntax) {
    hasFileMeta = false;
    ts = options.bareSyntax;
    start = 0;
  } else {
    const sniff = sniffBareDataSet(bytes);
    if (!sniff)
      throw new ZtvError(
        'not-dicom',
        `${what} is not DICOM: no "DICM" marker at byte 128 and no recognisable data set at its start`,
      );
    hasFileMeta = false;
    ts = sniff.ts;
    start = sniff.offset;
    warnings.push(`no File Meta Information: read as a bare data set in ${ts}`);
  }

  const enc = encodingOf(ts);
  let body = bytes;
  if (enc.deflated) {
    body = inflateCapped(
      bytes.subarray(start),
      options.maxInflated ?? MAX_INFLATED,
      `the deflated data set of ${what}`,
    );
    start = 0;
  }
  const parser = enc.littleEndian
    ? dicomParser.littleEndianByteArrayParser
    : dicomParser.bigEndianByteArrayParser;
  const DataSetCtor = (
    dicomParser as unknown as {
      DataSet: new (p: unknown, b: Uint8Array, e: object) => dicomParser.DataSet;
    }
  ).DataSet;
  // A file that ends with its File Meta holds no data set (dicom-parser's stream throws a bare string).
  if (start >= body.length)
    throw new ZtvError(
      'truncated',
      `${what} is truncated: it ends ${hasFileMeta ? 'after its File Meta Information' : 'at its start'}, with no data set`,
    );
  const raw = new DataSetCtor(parser, body, {});
  try {
    const stream = new dicomParser.ByteStream(parser, body, start);
    if (enc.explicit && !enc.littleEndian) parseExplicitBigEndian(raw, stream, body.length);
    else if (enc.explicit) dicomParser.parseDicomDataSetExplicit(raw, stream, body.length);
    else
      dicomParser.parseDicomDataSetImplicit(raw, stream, body.length, {
        untilTag: '',
        vrCallback: implicitVr,
      });
  } catch (e) {
    throw toZtvError(e, what);
  }
  for (const w of raw.warnings ?? []) warnings.push(w);
  const dataset = convert(raw, enc, warnings, 0, options.viewPixelData === true);
  // Group 0002 belongs to the File Meta only. A second copy inside the data set (seen in the wild)
  // must not override the real one; in a bare data set it is the only meta there is.
  for (const el of dataset.elements()) {
    if (el.tag >>> 16 !== 0x0002) continue;
    dataset.delete(el.tag);
    if (hasFileMeta)
      warnings.push(
        `ignored a stray File Meta element ${el.tag.toString(16).padStart(8, '0')} inside the data set`,
      );
    else meta.set(el);
  }
  if (dataset.size === 0) throw new ZtvError('not-dicom', `${what} holds no data elements`);
  const pixelEl =
    raw.elements['x7fe00010'] ?? raw.elements['x7fe00008'] ?? raw.elements['x7fe00009'];
  const pixelDataOffset =
    pixelEl && !pixelEl.encapsulatedPixelData && !enc.deflated && enc.littleEndian
      ? pixelEl.dataOffset
      : undefined;
  return { meta, dataset, transferSyntax: ts, hasFileMeta, warnings, pixelDataOffset };
}

/** Marks a UN element of undefined length whose items were read in Implicit VR Little Endian. */
const IMPLICIT_LE_ITEMS = Symbol('implicit little-endian items');

/**
 * The top level of an Explicit VR Big Endian data set, element by element with dicom-parser, except
 * for a UN element of undefined length: its value is a sequence encoded in Implicit VR Little Endian
 * whatever the transfer syntax (PS3.5 6.2.2), which dicom-parser would read big endian and fail on
 * ("item tag (FFFE,E000) not found", odd/GH177). Its items are read with the little-endian parser.
 */
function parseExplicitBigEndian(
  raw: dicomParser.DataSet,
  stream: dicomParser.ByteStream,
  end: number,
): void {
  const b = stream.byteArray as Uint8Array;
  const u16 = (o: number): number => (b[o]! << 8) | b[o + 1]!;
  while (stream.position < end) {
    const at = stream.position;
    const undefinedUn =
      at + 12 <= end &&
      b[at + 4] === 0x55 && // 'U'
      b[at + 5] === 0x4e && // 'N'
      b[at + 8] === 0xff &&
      b[at + 9] === 0xff &&
      b[at + 10] === 0xff &&
      b[at + 11] === 0xff;
    if (!undefinedUn) {
      const el = dicomParser.readDicomElementExplicit(stream, stream.warnings);
      raw.elements[el.tag] = el;
      continue;
    }
    const tag = `x${u16(at).toString(16).padStart(4, '0')}${u16(at + 2)
      .toString(16)
      .padStart(4, '0')}`;
    const el = {
      tag,
      vr: 'UN',
      length: 0xffffffff,
      dataOffset: at + 12,
      hadUndefinedLength: true,
      [IMPLICIT_LE_ITEMS]: true,
    } as unknown as dicomParser.Element;
    const le = new dicomParser.ByteStream(dicomParser.littleEndianByteArrayParser, b, at + 12);
    dicomParser.readSequenceItemsImplicit(le, el, implicitVr);
    stream.warnings.push(...le.warnings);
    raw.elements[tag] = el;
    stream.position = le.position;
  }
  if (stream.position > end) throw new Error('buffer overrun');
}

/** dicom-parser's hook for implicit VR: only needs to tell sequences apart. */
function implicitVr(tagStr: string): string {
  const vr = dictionaryVr(parseInt(tagStr.slice(1), 16));
  return vr === 'SQ' ? 'SQ' : (vr ?? 'UN').slice(0, 2);
}

function resolveVr(
  t: number,
  rawVr: string | undefined,
  ds: dicomParser.DataSet,
  warnings: string[],
): string {
  if (rawVr && KNOWN_VRS.has(rawVr)) return rawVr;
  const dict = dictionaryVr(t);
  if (rawVr) warnings.push(`element ${t.toString(16).padStart(8, '0')} has invalid VR "${rawVr}"`);
  if (!dict) return 'UN';
  if (dict === 'US or SS') return ds.uint16('x00280103') === 1 ? 'SS' : 'US';
  if (dict === 'OB or OW')
    return (ds.uint16('x00280100') ?? 16) <= 8 && t !== T.PixelData ? 'OB' : 'OW';
  if (dict === 'US or OW') return 'OW';
  return dict.length === 2 ? dict : 'UN';
}

function swapInPlace(b: Uint8Array, width: number): void {
  for (let i = 0; i + width <= b.length; i += width) {
    for (let a = i, z = i + width - 1; a < z; a++, z--) {
      const x = b[a]!;
      b[a] = b[z]!;
      b[z] = x;
    }
  }
}

const PIXEL_TAGS = new Set<number>([T.PixelData, T.FloatPixelData, T.DoubleFloatPixelData]);
const ITEM_DELIMITER = 0xfffee00d;

function convert(
  raw: dicomParser.DataSet,
  enc: Encoding,
  warnings: string[],
  depth: number,
  viewPixelData = false,
): DataSet {
  if (depth > 32) throw new ZtvError('not-dicom', 'sequences nest deeper than 32 levels');
  const out = new DataSet();
  const bytes = raw.byteArray as Uint8Array;
  for (const [key, el] of Object.entries(raw.elements)) {
    const t = parseInt(key.slice(1), 16) >>> 0;
    // Group FFFE holds the encoding's delimiters, never data elements. dicom-parser hands the Item
    // Delimitation Item (FFFE,E00D) that closes an item of undefined length back as an element of
    // that item: it ends the item, and our items are written with defined lengths.
    if (t >>> 16 === 0xfffe) {
      if (t !== ITEM_DELIMITER || depth === 0)
        warnings.push(`ignored a stray delimiter ${tagString(t)} among the data elements`);
      continue;
    }
    if (el.items) {
      const itemEnc = (el as { [IMPLICIT_LE_ITEMS]?: boolean })[IMPLICIT_LE_ITEMS]
        ? { explicit: false, littleEndian: true, deflated: false }
        : enc;
      out.set({
        tag: t,
        vr: 'SQ',
        items: el.items.map((it) =>
          it.dataSet ? convert(it.dataSet, itemEnc, warnings, depth + 1) : new DataSet(),
        ),
      });
      continue;
    }
    if (el.encapsulatedPixelData) {
      const fragments = (el.fragments ?? []).map((f) => {
        const s = f.position;
        if (s + f.length > bytes.length)
          throw new ZtvError('truncated', 'the encapsulated Pixel Data is truncated');
        return bytes.slice(s, s + f.length);
      });
      out.set({
        tag: t,
        vr: el.vr && KNOWN_VRS.has(el.vr) ? el.vr : 'OB',
        fragments,
        offsetTable: [...(el.basicOffsetTable ?? [])],
      });
      continue;
    }
    if (el.dataOffset + el.length > bytes.length)
      throw new ZtvError(
        'truncated',
        `the data is truncated: element (${t
          .toString(16)
          .padStart(8, '0')
          .replace(/^(.{4})/, '$1,')
          .toUpperCase()}) runs past its end`,
      );
    const vr = resolveVr(t, enc.explicit ? el.vr : undefined, raw, warnings);
    const view = viewPixelData && depth === 0 && enc.littleEndian && PIXEL_TAGS.has(t);
    const value = view
      ? bytes.subarray(el.dataOffset, el.dataOffset + el.length)
      : bytes.slice(el.dataOffset, el.dataOffset + el.length);
    if (!enc.littleEndian) {
      // Big endian swaps each value by its VR's word (PS3.5 2016b 7.3): OW by 16 bits whatever Bits
      // Allocated says — pixel cells are packed into 16-bit words (8.1.1), so a 32-bit cell is two
      // words — OF and OL by 32, OD by 64; OB and UN not at all.
      const w = VR_WORD.get(vr) ?? 1;
      if (w > 1) swapInPlace(value, w);
    }
    out.set({ tag: t, vr, value } satisfies DicomElement);
  }
  return out;
}
