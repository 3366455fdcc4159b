/**
 * Fuzzing (issue 17): fast-check drives structure-aware mutators (element length fields, VRs, tags,
 * sequence and item framing with undefined lengths, transfer syntax, pixel geometry and bit depths,
 * deflate streams, the container's fields, multipart framing, ticket claims and headers) into each
 * parser the parties expose; every exception other than the project's typed `ZtvError` is a defect,
 * kept as a regression corpus under test/fuzz-corpus/<target>/.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { deflateSync, inflateSync } from 'fflate';
import { CompactEncrypt } from 'jose';
import {
  checkpointMessage,
  nextRecord,
  signRecord,
  type AuditRecord,
} from '../../src/core/audit/record.ts';
import { readTrail } from '../../src/core/audit/trail.ts';
import { verifyChain } from '../../src/core/audit/verify.ts';
import { toBase64Url, utf8 } from '../../src/core/bytes.ts';
import { generateKeyPairPem, signingKeyFromPem } from '../../src/core/crypto/keys.ts';
import { LONG_VRS } from '../../src/core/dicom/dataset.ts';
import { parseDicom } from '../../src/core/dicom/parse.ts';
import { readPixelData } from '../../src/core/dicom/pixels.ts';
import { isZtvError, ZtvError } from '../../src/core/errors.ts';
import { buildMultipart, readMultipart } from '../../src/core/multipart.ts';
import { verifyProtected } from '../../src/core/protect/index.ts';
import { issueTicket, openCloudPart, openKeysPart } from '../../src/core/ticket/ticket.ts';
import { REPO_ROOT, samplePath } from '../../test/samples.ts';
import { makeSubject } from './tamper.ts';
import { testKeys } from '../../test/keys.ts';

export const CORPUS_DIR = join(REPO_ROOT, 'test', 'fuzz-corpus');
/** Inputs larger than this are not kept in the corpus (the repository holds small files only). */
const CORPUS_MAX = 64 * 1024;

/** A target: what it exercises, how inputs are made (a recipe, then bytes), how one is run. */
export interface Target<R = unknown> {
  readonly name: string;
  readonly what: string;
  readonly arbitrary: fc.Arbitrary<R>;
  build(recipe: R): Promise<Uint8Array> | Uint8Array;
  run(input: Uint8Array): Promise<void>;
}

// --- DICOM structure ---------------------------------------------------------------------------

const VRS = [
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL',
  'OV', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US',
  'UT', 'UV', '\0\0', 'ZZ', 'ob',
]; // prettier-ignore
const TRANSFER_SYNTAXES = [
  '1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99',
  '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57',
  '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.90',
  '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.203', '1.2.840.10008.1.2.8.1',
  '1.2.3', '',
]; // prettier-ignore
const PHOTOMETRIC = [
  'MONOCHROME1', 'MONOCHROME2', 'RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_RCT', 'YBR_ICT',
  'PALETTE COLOR', 'YBR_PARTIAL_420', 'HSV', '',
]; // prettier-ignore
const SPECIAL_U16 = [
  0, 1, 2, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 0x7fff, 0xffff,
];
const SPECIAL_U32 = [
  0, 1, 2, 3, 4, 7, 8, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];
/** Pixel geometry and bit depth: (0028,xxxx) elements whose values the mutator rewrites. */
const GEOMETRY = new Set([0x00280002, 0x00280006, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103]); // prettier-ignore

export interface Element {
  readonly start: number;
  readonly tag: number;
  readonly vr?: string;
  readonly lengthAt: number;
  readonly lengthSize: 2 | 4;
  readonly length: number;
  readonly valueAt: number;
}

/**
 * Every element header of a data set, nested ones included, by a flat walk: sequences, items and
 * undefined-length values (encapsulated fragments) are walked into, other values skipped.
 */
export function walk(b: Uint8Array, from: number, explicit: boolean, limit = 4096): Element[] {
  const out: Element[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  let at = from;
  while (at + 8 <= b.length && out.length < limit) {
    const tag = ((dv.getUint16(at, true) << 16) | dv.getUint16(at + 2, true)) >>> 0;
    let vr: string | undefined;
    let lengthAt: number;
    let lengthSize: 2 | 4;
    let header: number;
    if (tag >>> 16 === 0xfffe || !explicit) {
      lengthAt = at + 4;
      lengthSize = 4;
      header = 8;
    } else {
      vr = String.fromCharCode(b[at + 4]!, b[at + 5]!);
      if (LONG_VRS.has(vr)) {
        if (at + 12 > b.length) break;
        lengthAt = at + 8;
        lengthSize = 4;
        header = 12;
      } else {
        lengthAt = at + 6;
        lengthSize = 2;
        header = 8;
      }
    }
    const length = lengthSize === 2 ? dv.getUint16(lengthAt, true) : dv.getUint32(lengthAt, true);
    out.push({ start: at, tag, vr, lengthAt, lengthSize, length, valueAt: at + header });
    const into =
      vr === 'SQ' ||
      tag === 0xfffee000 ||
      length === 0xffffffff ||
      (!explicit && length !== 0 && tag >>> 16 !== 0x7fe0 && looksLikeItem(b, at + header));
    if (tag === 0xfffee00d || tag === 0xfffee0dd) at += 8;
    else if (into && !(tag === 0xfffee000 && out.at(-2)?.tag === 0x7fe00010)) at += header;
    else at += header + (length === 0xffffffff ? 0 : length);
  }
  return out;
}

const looksLikeItem = (b: Uint8Array, at: number): boolean =>
  at + 4 <= b.length &&
  b[at] === 0xfe &&
  b[at + 1] === 0xff &&
  b[at + 2] === 0x00 &&
  b[at + 3] === 0xe0;

/** Where a Part 10 file's data set starts and how it is encoded (from its File Meta), or undefined. */
export function layoutOf(
  b: Uint8Array,
): { metaEnd: number; explicit: boolean; deflated: boolean } | undefined {
  if (b.length < 144 || String.fromCharCode(...b.subarray(128, 132)) !== 'DICM') return undefined;
  const meta = walk(b, 132, true, 64).filter((e) => e.tag >>> 16 === 2);
  const last = meta.at(-1);
  if (!last) return undefined;
  const tsEl = meta.find((e) => e.tag === 0x00020010);
  const ts = tsEl
    ? String.fromCharCode(...b.subarray(tsEl.valueAt, tsEl.valueAt + tsEl.length)).replace(
        /\0/g,
        '',
      )
    : '';
  return {
    metaEnd: last.valueAt + last.length,
    explicit: ts !== '1.2.840.10008.1.2',
    deflated: ts === '1.2.840.10008.1.2.1.99',
  };
}

/** One structure-aware mutation; parameters are drawn by fast-check, positions taken modulo. */
export type Mutation =
  | { op: 'length'; el: number; pick: number; raw: number }
  | { op: 'vr'; el: number; vr: string }
  | { op: 'tag'; el: number; tag: number }
  | { op: 'geometry'; el: number; value: number }
  | { op: 'text'; which: 'ts' | 'photometric' | 'frames'; pick: number }
  | { op: 'insert'; el: number; bytes: Uint8Array }
  | { op: 'delete'; el: number; count: number }
  | { op: 'duplicate'; el: number }
  | { op: 'truncate'; at: number }
  | { op: 'flip'; at: number; mask: number }
  | { op: 'pixels'; at: number; bytes: Uint8Array };

const FRAMING = [
  Uint8Array.of(0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff), // item, undefined length
  Uint8Array.of(0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0), // item delimiter
  Uint8Array.of(0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0), // sequence delimiter
  Uint8Array.of(0x08, 0x00, 0x15, 0x11, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff), // SQ, undefined
  Uint8Array.of(0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff), // encapsulated
];

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('length' as const), el: fc.nat(), pick: fc.nat(), raw: fc.nat() }),
  fc.record({ op: fc.constant('vr' as const), el: fc.nat(), vr: fc.constantFrom(...VRS) }),
  fc.record({
    op: fc.constant('tag' as const),
    el: fc.nat(),
    tag: fc.oneof(
      fc.constantFrom(
        0xfffee000,
        0xfffee00d,
        0xfffee0dd,
        0x7fe00010,
        0x00020010,
        0x00280010,
        0x04000500,
      ),
      fc.nat({ max: 0xffffffff }),
    ),
  }),
  fc.record({
    op: fc.constant('geometry' as const),
    el: fc.nat(),
    value: fc.oneof(fc.constantFrom(...SPECIAL_U16), fc.nat({ max: 0xffff })),
  }),
  fc.record({
    op: fc.constant('text' as const),
    which: fc.constantFrom('ts' as const, 'photometric' as const, 'frames' as const),
    pick: fc.nat(),
  }),
  fc.record({
    op: fc.constant('insert' as const),
    el: fc.nat(),
    bytes: fc.oneof(fc.constantFrom(...FRAMING), fc.uint8Array({ minLength: 1, maxLength: 16 })),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    el: fc.nat(),
    count: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({ op: fc.constant('duplicate' as const), el: fc.nat() }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    op: fc.constant('flip' as const),
    at: fc.nat(),
    mask: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    op: fc.constant('pixels' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

const splice = (b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array => {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
};

const padText = (s: string, nul: boolean): Uint8Array => {
  const t = s.length % 2 ? s + (nul ? '\0' : ' ') : s;
  return utf8(t);
};

function writeLength(b: Uint8Array, e: Element, v: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (e.lengthSize === 2) dv.setUint16(e.lengthAt, v & 0xffff, true);
  else dv.setUint32(e.lengthAt, v >>> 0, true);
}

/** Replaces an element's value (its length field rewritten; enclosing lengths left as they were). */
function replaceValue(b: Uint8Array, e: Element, value: Uint8Array): Uint8Array {
  if (e.length === 0xffffffff || e.valueAt + e.length > b.length) return b;
  const out = splice(b, e.valueAt, e.length, value);
  writeLength(out, e, value.length);
  return out;
}

/** Applies mutations to a data set encoded from `from` (elements found by `walk`). */
export function mutateDataSet(
  base: Uint8Array,
  from: number,
  explicit: boolean,
  muts: readonly Mutation[],
  elements: (b: Uint8Array) => Element[] = (b) => walk(b, from, explicit),
): Uint8Array {
  let b: Uint8Array = base.slice();
  for (const m of muts) {
    const els = elements(b);
    const el = 'el' in m && els.length ? els[m.el % els.length]! : undefined;
    switch (m.op) {
      case 'length': {
        if (!el) break;
        const choices = [...SPECIAL_U32, el.length + 1, el.length - 1, el.length * 2, b.length - el.valueAt, b.length - el.valueAt + 1, m.raw]; // prettier-ignore
        writeLength(b, el, choices[m.pick % choices.length]!);
        break;
      }
      case 'vr':
        if (el?.vr) {
          b[el.start + 4] = m.vr.charCodeAt(0) & 0xff;
          b[el.start + 5] = m.vr.charCodeAt(1) & 0xff;
        }
        break;
      case 'tag':
        if (el) {
          const dv = new DataView(b.buffer, b.byteOffset, b.length);
          dv.setUint16(el.start, m.tag >>> 16, true);
          dv.setUint16(el.start + 2, m.tag & 0xffff, true);
        }
        break;
      case 'geometry': {
        // Whole values only: an earlier mutation may have cut the file inside one.
        const geo = els.filter(
          (e) => GEOMETRY.has(e.tag) && e.length === 2 && e.valueAt + 2 <= b.length,
        );
        const g = geo.length ? geo[m.el % geo.length] : undefined;
        if (g) new DataView(b.buffer, b.byteOffset, b.length).setUint16(g.valueAt, m.value, true);
        break;
      }
      case 'text': {
        const [tag, list, nul] =
          m.which === 'ts'
            ? [0x00020010, TRANSFER_SYNTAXES, true]
            : m.which === 'photometric'
              ? [0x00280004, PHOTOMETRIC, false]
              : [0x00280008, ['0', '1', '2', '3', '10', '-1', '65536', '2147483648', 'x'], false];
        const all = tag === 0x00020010 ? walk(b, 132, true, 64) : els;
        const e = all.find((x) => x.tag === tag);
        if (e) b = replaceValue(b, e, padText(list[m.pick % list.length]!, nul));
        break;
      }
      case 'insert':
        b = splice(b, Math.min(el ? el.start : from, b.length), 0, m.bytes);
        break;
      case 'delete':
        if (el) b = splice(b, el.start, Math.min(m.count, b.length - el.start), new Uint8Array());
        break;
      case 'duplicate':
        if (el && el.length !== 0xffffffff && el.valueAt + el.length <= b.length)
          b = splice(b, el.valueAt + el.length, 0, b.slice(el.start, el.valueAt + el.length));
        break;
      case 'truncate':
        b = b.slice(0, m.at % (b.length + 1));
        break;
      case 'flip':
        if (b.length) b[m.at % b.length]! ^= m.mask;
        break;
      case 'pixels': {
        // Inside the last element's value: the pixel data, the codec's stream.
        const last = els.at(-1);
        const lo = last ? last.valueAt : from;
        if (b.length > lo) {
          const at = lo + (m.at % (b.length - lo));
          b.set(m.bytes.subarray(0, b.length - at), at);
        }
        break;
      }
    }
  }
  return b;
}

/** Mutates a Part 10 file: its data set (inflated, mutated and deflated again when deflated). */
export function mutateFile(
  base: Uint8Array,
  muts: readonly Mutation[],
  deflateMode: 'stream' | 'content',
): Uint8Array {
  const layout = layoutOf(base);
  if (!layout) return mutateDataSet(base, 0, true, muts);
  if (!layout.deflated)
    return mutateDataSet(base, 132, layout.explicit, muts, (b) => [
      ...walk(b, 132, true, 64).filter((e) => e.tag >>> 16 === 2),
      ...walk(b, layout.metaEnd, layout.explicit),
    ]);
  const head = base.subarray(0, layout.metaEnd);
  const body = base.subarray(layout.metaEnd);
  if (deflateMode === 'stream') {
    // The compressed stream itself: bit flips, bytes overwritten, truncation.
    const stream = mutateDataSet(body, 0, true, muts.filter((m) => m.op === 'flip' || m.op === 'truncate' || m.op === 'pixels')); // prettier-ignore
    return concat(head, stream);
  }
  let inflated: Uint8Array;
  try {
    inflated = inflateSync(body);
  } catch {
    return base;
  }
  return concat(head, deflateSync(mutateDataSet(inflated, 0, true, muts)));
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

// --- targets -----------------------------------------------------------------------------------

/** The sources the DICOM target mutates: every transfer syntax and pixel kind we read. */
export const DICOM_SEEDS = [
  'small/MR_small.dcm',
  'small/MR_small_implicit.dcm',
  'small/MR_small_bigendian.dcm',
  'small/MR_small_RLE.dcm',
  'small/MR_small_jpeg_ls_lossless.dcm',
  'small/MR_small_jp2klossless.dcm',
  'small/JPGExtended.dcm',
  'small/SC_rgb_jpeg_dcmtk.dcm',
  'small/SC_rgb_rle_2frame.dcm',
  'small/image_dfl.dcm',
  'small/liver_deflate.dcm',
  'small/rtdose.dcm',
  'small/SC_ybr_full_422_uncompressed.dcm',
  'small/emri_small_jpeg_2k_lossless.dcm',
];

const typedOnly = async (f: () => Promise<unknown>): Promise<void> => {
  try {
    await f();
  } catch (e) {
    if (!isZtvError(e)) throw e;
  }
};

interface DicomRecipe {
  seed: number;
  muts: Mutation[];
  deflateMode: 'stream' | 'content';
}

const recipeArb = (seeds: number): fc.Arbitrary<DicomRecipe> =>
  fc.record({
    seed: fc.nat({ max: seeds - 1 }),
    muts: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
    deflateMode: fc.constantFrom('stream' as const, 'content' as const),
  });

/** parseDicom, then the codecs through readPixelData. */
export function dicomTarget(seeds = DICOM_SEEDS): Target<DicomRecipe> {
  const bases = seeds.map((rel) => new Uint8Array(readFileSync(samplePath(rel))));
  return {
    name: 'dicom',
    what: `\`parseDicom\` then \`readPixelData\` (every codec) over ${seeds.length} real files of every transfer syntax`,
    arbitrary: recipeArb(bases.length),
    build: (r) => mutateFile(bases[r.seed]!, r.muts, r.deflateMode),
    run: (input) =>
      typedOnly(async () => {
        const parsed = parseDicom(input);
        await readPixelData(parsed);
      }),
  };
}

/** verifyProtected over protected, traced files with the container's fields and the header mutated. */
export async function protectedTarget(
  seeds: readonly string[] = ['small/MR_small.dcm', 'small/SC_rgb.dcm', 'small/rtdose.dcm'],
): Promise<Target<{ seed: number; muts: Mutation[]; fields: { field: number; value: number }[] }>> {
  const keys = await testKeys();
  const subjects: Awaited<ReturnType<typeof makeSubject>>[] = [];
  for (const rel of seeds) subjects.push(await makeSubject(rel, rel, keys));
  // Container fields: [offset, size] (docs/protection.md, "The container").
  const FIELDS: [number, number][] = [[4, 2], [6, 2], [8, 4], [12, 1], [13, 1], [14, 1], [15, 1], [16, 4], [20, 4], [24, 2], [26, 4], [30, 2]]; // prettier-ignore
  return {
    name: 'protected',
    what: `\`verifyProtected\` over ${seeds.length} protected and traced files: the container's fields (lengths, planes, tile side and count, payload bits, algorithms) and the DICOM structure mutated`,
    arbitrary: fc.record({
      seed: fc.nat({ max: subjects.length - 1 }),
      muts: fc.array(mutationArb, { maxLength: 2 }),
      fields: fc.array(
        fc.record({
          field: fc.nat({ max: FIELDS.length - 1 }),
          value: fc.oneof(fc.constantFrom(...SPECIAL_U32), fc.nat({ max: 0xffffffff })),
        }),
        { maxLength: 3 },
      ),
    }),
    build: (r) => {
      const s = subjects[r.seed]!;
      const b = s.bytes.slice();
      const region = s.regions.get('container')!;
      for (const { field, value } of r.fields) {
        const [offset, size] = FIELDS[field]!;
        for (let i = 0; i < size * 8; i++) {
          const bitValue = (value >>> (size * 8 - 1 - i)) & 1;
          const n = offset * 8 + i; // container bits are most significant first
          const [byte, bit] = region.at(n);
          b[byte] = (b[byte]! & ~(1 << bit)) | (bitValue << bit);
        }
      }
      return r.muts.length ? mutateDataSet(b, 132, true, r.muts) : b;
    },
    run: (input) => typedOnly(() => verifyProtected(input, { resolver: keys.resolver })),
  };
}

/** The STOW-RS / retrieval multipart reader over mutated framing, chunked at random points. */
export function multipartTarget(): Target<{
  muts: Mutation[];
  text: number[];
  chunk: number;
  requireLength: boolean;
}> {
  const boundary = 'ztv-fuzz-boundary';
  const body = buildMultipart(
    [
      { body: new Uint8Array(300).fill(7) },
      {
        headers: { 'Content-Type': 'application/dicom; transfer-syntax=1.2.840.10008.1.2.1' },
        body: utf8('second'),
      },
      { body: new Uint8Array(0) },
    ],
    boundary,
  );
  const text = new TextDecoder().decode(body);
  // Places where the framing lives: delimiters, header names, Content-Length values, CRLFs.
  const anchors = [...text.matchAll(/--ztv|Content-Length: \d+|\r\n|Content-Type/g)].map(
    (m) => m.index,
  );
  const REPLACEMENTS = ['Content-Length: -1', 'Content-Length: 99999999999', 'Content-Length: 1e3', 'Content-Length: ', 'Content-Length: 0x10', `X-${'h'.repeat(9000)}: y`, '\r\n'.repeat(70), `--${boundary}--`, `--${boundary}`, '\n', '\r', '', 'Content-Length: 301', 'Content-Length: 299']; // prettier-ignore
  return {
    name: 'multipart',
    what: 'the multipart/related reader (`readMultipart`: STOW-RS bodies at the producer, retrievals at clients) over mutated delimiters, headers and Content-Length values, chunked at random points',
    arbitrary: fc.record({
      muts: fc.array(
        mutationArb.filter(
          (m) => m.op === 'flip' || m.op === 'truncate' || m.op === 'insert' || m.op === 'delete',
        ),
        { maxLength: 2 },
      ),
      text: fc.array(fc.nat(), { minLength: 0, maxLength: 6 }),
      chunk: fc.integer({ min: 1, max: 4096 }),
      requireLength: fc.boolean(),
    }),
    build: (r) => {
      let b: Uint8Array = body.slice();
      for (let i = 0; i + 1 < r.text.length; i += 2) {
        const at = anchors[r.text[i]! % anchors.length]!;
        const rep = utf8(REPLACEMENTS[r.text[i + 1]! % REPLACEMENTS.length]!);
        const end = text.indexOf('\r\n', at + 1);
        b = splice(
          b,
          Math.min(at, b.length),
          Math.max(0, Math.min(end, b.length) - at) * (r.text[i + 1]! % 2),
          rep,
        );
      }
      b = mutateDataSet(b, 0, true, r.muts);
      // The chunk size and the reader's option ride in the first two bytes of the kept input.
      return concat(
        Uint8Array.of(r.chunk & 0xff, ((r.chunk >> 8) & 0x7f) | (r.requireLength ? 0x80 : 0)),
        b,
      );
    },
    run: (input) =>
      typedOnly(async () => {
        const chunk = Math.max(1, (input[0] ?? 1) | (((input[1] ?? 0) & 0x7f) << 8));
        const requireLength = ((input[1] ?? 0) & 0x80) !== 0;
        const data = input.subarray(2);
        const chunks = function* () {
          for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
        };
        for await (const part of readMultipart(chunks(), {
          boundary,
          requireLength,
          maxPart: 1 << 20,
        }))
          void part.body.length;
      }),
  };
}

/** Blind tickets: compact JWS/JWE mutated, and well-signed tickets with mutated headers and claims. */
export async function ticketTarget(): Promise<
  Target<{ kind: number; path: number; value: number; muts: Mutation[]; part: 'cloud' | 'keys' }>
> {
  const producer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const ecdh = () => crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']) as Promise<CryptoKeyPair>; // prettier-ignore
  const cloud = await ecdh();
  const device = await ecdh();
  const images = [
    { id: 'img-1', key: new Uint8Array(32).fill(1), trace: new Uint8Array(32).fill(2) },
  ];
  const base = await issueTicket({
    producer,
    producerId: 'producer-a',
    cloudId: 'cloud-1',
    cloudEncryptionKey: cloud.publicKey,
    deviceId: 'device-x',
    deviceEncryptionKey: device.publicKey,
    images,
    ttlMs: 600_000,
    purpose: 'TREAT',
  });
  const resolveProducer = (kid: string) =>
    kid === producer.publicKey.keyIdHex
      ? Promise.resolve({ producerId: 'producer-a', key: producer.publicKey })
      : Promise.reject(new ZtvError('ticket', 'the ticket is signed by no known producer')); // as ticketProducerResolver
  const claims = {
    v: 1,
    iss: 'producer-a',
    aud: 'cloud-1',
    sub: 'device-x',
    tid: base.tid,
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 600,
    nonce: '0'.repeat(32),
    purpose: 'TREAT',
    images: [{ id: 'img-1', trace: '2'.repeat(64), key: 'AQEBAQ' }],
  } as Record<string, unknown>;
  const paths = Object.keys(claims);
  const VALUES: unknown[] = [null, 0, -1, 1e308, '', 'x', [], {}, [{}], [1], [{ id: 1, trace: 2, key: 3 }], [{ id: 'img-1', trace: 'zz', key: '' }], true, 'cloud-1', 'device-x', '1'.repeat(32), Number.MAX_SAFE_INTEGER]; // prettier-ignore
  const HEADERS: Record<string, unknown>[] = [{ alg: 'none' }, { alg: 'HS256', typ: 'ztv-ticket-cloud+jws', kid: producer.publicKey.keyIdHex }, { alg: 'ES256', kid: producer.publicKey.keyIdHex }, { alg: 'ES256', typ: 'ztv-ticket-keys+jws', kid: 'nope' }, { alg: 'ES256', typ: 'ztv-ticket-cloud+jws', kid: producer.publicKey.keyIdHex, crit: ['x'] }, { alg: 'ES256', typ: 7, kid: producer.publicKey.keyIdHex }]; // prettier-ignore
  // Signed by hand, so that headers jose would refuse to write (alg none, HS256) are sent too.
  const sign = async (payload: Uint8Array, header: Record<string, unknown>): Promise<string> => {
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
    const sig = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' },
      producer.cryptoKey,
      utf8(input) as Uint8Array<ArrayBuffer>,
    );
    return `${input}.${Buffer.from(sig).toString('base64url')}`;
  };
  return {
    name: 'ticket',
    what: 'blind tickets (`openCloudPart`, `openKeysPart`): compact JWS/JWE bytes mutated, and tickets signed by the right producer with mutated JWS headers, mutated JWE and mutated claims',
    arbitrary: fc.record({
      kind: fc.nat({ max: 3 }),
      path: fc.nat(),
      value: fc.nat(),
      muts: fc.array(mutationArb.filter((m) => m.op === 'flip' || m.op === 'truncate' || m.op === 'insert' || m.op === 'delete'), { minLength: 1, maxLength: 3 }), // prettier-ignore
      part: fc.constantFrom('cloud' as const, 'keys' as const),
    }),
    build: async (r) => {
      const typ = r.part === 'cloud' ? 'ztv-ticket-cloud+jws' : 'ztv-ticket-keys+jws';
      const header = { alg: 'ES256', typ, kid: producer.publicKey.keyIdHex };
      const recipient = r.part === 'cloud' ? cloud.publicKey : device.publicKey;
      let token: string;
      if (r.kind === 0) {
        // The token's bytes: dots, base64url, signatures.
        token = new TextDecoder().decode(
          mutateDataSet(utf8(r.part === 'cloud' ? base.cloud : base.keys), 0, true, r.muts),
        );
      } else if (r.kind === 1) {
        token = await sign(
          utf8(r.part === 'cloud' ? jweOf(base.cloud) : jweOf(base.keys)),
          HEADERS[r.value % HEADERS.length]!,
        );
      } else if (r.kind === 2) {
        // A well-signed JWS around a mutated JWE.
        const jwe = mutateDataSet(
          utf8(r.part === 'cloud' ? jweOf(base.cloud) : jweOf(base.keys)),
          0,
          true,
          r.muts,
        );
        token = await sign(jwe, header);
      } else {
        const c = { ...claims, [paths[r.path % paths.length]!]: VALUES[r.value % VALUES.length] };
        const jwe = await new CompactEncrypt(utf8(JSON.stringify(c)))
          .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'json' })
          .encrypt(recipient);
        token = await sign(utf8(jwe), header);
      }
      return concat(Uint8Array.of(r.part === 'cloud' ? 0 : 1), utf8(token));
    },
    run: (input) =>
      typedOnly(async () => {
        const token = new TextDecoder().decode(input.subarray(1));
        if (input[0] === 0)
          await openCloudPart(token, { resolveProducer, decryptionKey: cloud.privateKey, cloudId: 'cloud-1', deviceId: 'device-x' }); // prettier-ignore
        else
          await openKeysPart(token, { resolveProducer, decryptionKey: device.privateKey, deviceId: 'device-x' }); // prettier-ignore
      }),
  };
}

/**
 * The auditor's reader of a party's audit trail (`readTrail` then `verifyChain`, what
 * `AuditorClient.verifyChain` runs on a party's answer): a signed chain of 6 records with a
 * checkpoint, as JSON, mutated as text (then whatever still parses) or field by field (a record's
 * or checkpoint's field replaced by a value of another type or shape).
 */
export async function auditTarget(): Promise<
  Target<{ kind: number; at: number; path: number; value: number; muts: Mutation[] }>
> {
  const signer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const records: AuditRecord[] = [];
  let head = { seq: 0, hash: '0'.repeat(64) };
  for (let i = 0; i < 6; i++) {
    const r = await signRecord(
      nextRecord(
        {
          event: '110106',
          subtype: i % 2 ? 'redemption' : 'trace-inserted',
          action: 'R',
          outcome: 0,
          actor: { id: `device-${i}`, role: 'attending' },
          objects: [{ type: 'ticket', id: `t-${i}` }],
          details: { images: i, note: 'x' },
        },
        head,
        'cloud',
        new Date(Date.UTC(2026, 0, 1, 0, i)),
      ),
      signer,
    );
    records.push(r);
    head = { seq: r.seq, hash: r.hash };
  }
  const cp = { seq: 6, hash: head.hash, time: '2026-01-01T00:06:00.000Z', party: 'cloud' };
  const checkpoint = {
    ...cp,
    keyId: signer.publicKey.keyIdHex,
    signature: toBase64Url(await signer.sign(checkpointMessage(cp))),
  };
  const trail = {
    party: 'cloud',
    verification: { ok: true, breaks: [] },
    checkpoints: [checkpoint],
    records,
    complete: true,
    truncated: false,
  };
  const text = JSON.stringify(trail);
  const FIELDS = ['seq', 'time', 'party', 'event', 'subtype', 'action', 'outcome', 'actor', 'objects', 'details', 'prev', 'hash', 'v', 'keyId', 'signature']; // prettier-ignore
  const VALUES: unknown[] = [null, undefined, 0, -1, 1.5, 1e308, '', 'zz', '!!', [], {}, [null], [{}], { id: 7 }, true, '0'.repeat(64), Number.MAX_SAFE_INTEGER + 2]; // prettier-ignore
  const resolveKey = (id: string) =>
    Promise.resolve(id === signer.publicKey.keyIdHex ? signer.publicKey : undefined);
  return {
    name: 'audit',
    what: "the auditor's reader of a party's audit trail (`readTrail`, then `verifyChain`): a signed chain of 6 records and a checkpoint, its JSON mutated as text, and its records' and checkpoint's fields replaced by values of other types",
    arbitrary: fc.record({
      kind: fc.nat({ max: 2 }),
      at: fc.nat(),
      path: fc.nat(),
      value: fc.nat(),
      muts: fc.array(mutationArb.filter((m) => m.op === 'flip' || m.op === 'truncate' || m.op === 'insert' || m.op === 'delete'), { minLength: 1, maxLength: 3 }), // prettier-ignore
    }),
    build: (r) => {
      if (r.kind === 0) return Promise.resolve(mutateDataSet(utf8(text), 0, true, r.muts));
      const doc = JSON.parse(text) as { records: Record<string, unknown>[]; checkpoints: Record<string, unknown>[] }; // prettier-ignore
      const target = r.kind === 1 ? doc.records[r.at % doc.records.length]! : doc.checkpoints[0]!;
      target[FIELDS[r.path % FIELDS.length]!] = VALUES[r.value % VALUES.length];
      return Promise.resolve(utf8(JSON.stringify(doc)));
    },
    run: (input) =>
      typedOnly(async () => {
        let doc: unknown;
        try {
          doc = JSON.parse(new TextDecoder().decode(input));
        } catch {
          return; // not JSON: the session layer's parser refuses it before the reader
        }
        const t = readTrail(doc);
        await verifyChain(t.party, t.records, t.checkpoints, resolveKey);
      }),
  };
}

/** The JWE inside a compact JWS (its payload, base64url-decoded). */
const jweOf = (jws: string): string =>
  Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8');

// --- the engine's loop ---------------------------------------------------------------------------

export interface FuzzResult {
  readonly target: string;
  readonly what: string;
  readonly inputs: number;
  /** Exceptions other than ZtvError: each a defect, its input kept in the corpus. */
  readonly untyped: { message: string; file?: string }[];
  /** Inputs whose run took over 5 s. */
  readonly hangs: number;
  readonly slowestMs: number;
  /** Peak resident set size over the run, in MiB. */
  readonly peakRssMiB: number;
  readonly seconds: number;
}

export const HANG_MS = 5000;

/** Runs `runs` inputs of a target (fast-check generates the recipes from `seed`). */
export async function fuzz<R>(
  target: Target<R>,
  runs: number,
  seed: number,
  keep = false,
): Promise<FuzzResult> {
  const started = performance.now();
  const untyped: { message: string; file?: string }[] = [];
  const seen = new Set<string>();
  let inputs = 0;
  let hangs = 0;
  let slowestMs = 0;
  let peakRss = process.memoryUsage().rss;
  await fc.assert(
    fc.asyncProperty(target.arbitrary, async (recipe) => {
      let input: Uint8Array;
      try {
        input = await target.build(recipe);
      } catch (e) {
        // The campaign's own mutator failed: reported with the recipe, and the campaign goes on.
        const message = `harness: ${(e as Error).message} building ${JSON.stringify(recipe)}`;
        if (untyped.length < 100) untyped.push({ message: message.slice(0, 300) });
        return true;
      }
      const t0 = performance.now();
      try {
        await target.run(input);
      } catch (e) {
        const message = (e instanceof Error ? `${e.name}: ${e.message}` : `non-Error thrown: ${String(e)}`).slice(0, 300); // prettier-ignore
        const key = message.replace(/\d+/g, 'N');
        if (!seen.has(key)) {
          seen.add(key);
          untyped.push({ message, file: keep ? keepInCorpus(target.name, input) : undefined });
        }
      }
      const ms = performance.now() - t0;
      slowestMs = Math.max(slowestMs, ms);
      if (ms > HANG_MS) {
        hangs++;
        untyped.push({
          message: `hang: ${(ms / 1000).toFixed(1)} s`,
          file: keep ? keepInCorpus(target.name, input) : undefined,
        });
      }
      if (++inputs % 64 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
      return true;
    }),
    { numRuns: runs, seed, endOnFailure: true },
  );
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  return {
    target: target.name,
    what: target.what,
    inputs,
    untyped,
    hangs,
    slowestMs,
    peakRssMiB: peakRss / 2 ** 20,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Keeps an input that failed under test/fuzz-corpus/<target>/<sha256 prefix>.bin; returns its name. */
export function keepInCorpus(target: string, input: Uint8Array): string | undefined {
  if (input.length > CORPUS_MAX) return undefined;
  const dir = join(CORPUS_DIR, target);
  mkdirSync(dir, { recursive: true });
  const name = `${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`;
  writeFileSync(join(dir, name), input);
  return `test/fuzz-corpus/${target}/${name}`;
}

/** The corpus of a target: every input that ever failed, by file name. */
export function corpus(target: string): { name: string; input: Uint8Array }[] {
  const dir = join(CORPUS_DIR, target);
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.bin'));
  } catch {
    return [];
  }
  return names
    .sort()
    .map((name) => ({ name, input: new Uint8Array(readFileSync(join(dir, name))) }));
}
