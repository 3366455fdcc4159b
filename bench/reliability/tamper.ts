/**
 * Tamper campaign (issue 17): single-bit flips, one per trial on a fresh copy, over protected and traced
 * files of every sample kind, spread over every region of the file; truncations and garbage. Uses only
 * the public protect / trace / verify / open functions, so it holds whatever the container's format.
 */
import { readFileSync } from 'node:fs';
import dicomParser from 'dicom-parser';
import { BASIC_PROFILE_ACTIONS } from '../../src/core/dicom/confidentiality-profile.ts';
import { MARKER_TAGS } from '../../src/core/dicom/deidentify.ts';
import { parseDicom } from '../../src/core/dicom/parse.ts';
import { pixelInfoOf } from '../../src/core/dicom/pixels.ts';
import { T } from '../../src/core/dicom/tags.ts';
import { isZtvError } from '../../src/core/errors.ts';
import { TRACE_SLOT_LENGTH } from '../../src/core/protect/container.ts';
import { geometryOf } from '../../src/core/protect/geometry.ts';
import {
  inspectProtected,
  openProtected,
  protect,
  traceIdFrom,
  traceProtected,
  verifyProtected,
} from '../../src/core/protect/index.ts';
import type { Verdict } from '../../src/core/protect/verdict.ts';
import { prng, testKeys, type TestKeys } from '../../test/keys.ts';
import { samplePath } from '../../test/samples.ts';

/** The regions of a protected, traced file, in file order. */
export const REGIONS = [
  'preamble',
  'file meta',
  'clear header',
  'protected header attributes',
  'Encrypted Attributes Sequence',
  'container',
  'trace slot',
  'ciphertext',
] as const;
export type Region = (typeof REGIONS)[number];

/** What each region is, and what binds it (the report's table). */
export const REGION_NOTES: Record<Region, string> = {
  preamble:
    '128 bytes before `DICM`; not signed, must be zero (`header.encoding`), so a flip is caught',
  'file meta':
    '`DICM` and group 0002, re-derived from the sealed data set (`header.meta`, `.encoding`)',
  'clear header':
    'elements kept in clear (tags, VRs, lengths and values, the Pixel Data element header): protected header digest, canonical encoding',
  'protected header attributes':
    'elements the Basic Profile replaced, emptied or added (dummies, new UIDs, the de-identification markers): protected header digest',
  'Encrypted Attributes Sequence':
    '(0400,0500) with the CMS EnvelopedData of the originals: protected header digest; original header digest with the key',
  container:
    "the sealed container in R's low planes (fields, digests, tile tags, the seal) and its zero padding",
  'trace slot': "the cloud's trace, signed by a trusted cloud key",
  ciphertext:
    'every other bit of Pixel Data (and its pad byte): ciphertext digest, tile tags; original pixel digest with the key',
};

export interface Subject {
  readonly rel: string;
  readonly kind: string;
  readonly bytes: Uint8Array;
  readonly imageKey: Uint8Array;
  /** Bits of each region, and where bit n of it is in the file. */
  readonly regions: Map<Region, { bits: number; at: (n: number) => [byte: number, bit: number] }>;
}

/** Every kind of sample that protects: CT, MR, 8-bit, signed, RGB, multi-frame, decoded compressed. */
export const SUBJECTS: readonly [rel: string, kind: string][] = [
  ['series/ct_chest_LIDC-IDRI-0314/000002.dcm', 'CT slice 512x512, signed 16-bit'],
  ['small/CT_small.dcm', 'CT 128x128, signed 16-bit'],
  ['small/MR_small.dcm', 'MR 64x64, signed 16-bit'],
  ['small/MR_small_implicit.dcm', 'MR, implicit VR source'],
  ['small/MR_small_bigendian.dcm', 'MR, big endian source'],
  ['small/JLSL_16_15_1_1F.dcm', 'signed 15-bit, decoded JPEG-LS'],
  ['small/image_dfl.dcm', '8-bit grey, decoded deflate'],
  ['small/SC_rgb.dcm', 'RGB 8-bit'],
  ['small/color-pl.dcm', 'RGB colour by plane'],
  ['small/SC_ybr_full_422_uncompressed.dcm', 'YBR_FULL_422'],
  ['small/emri_small.dcm', 'multi-frame MR, 10 frames, 12-bit'],
  ['small/rtdose.dcm', 'multi-frame RT dose, 32-bit'],
  ['small/liver.dcm', '1-bit SEG, 3 frames'],
  ['small/MR_small_RLE.dcm', 'decoded RLE'],
  ['small/MR_small_jp2klossless.dcm', 'decoded JPEG 2000 lossless'],
  ['small/emri_small_jpeg_ls_lossless.dcm', 'multi-frame, decoded JPEG-LS'],
  ['small/SC_rgb_jpeg_dcmtk.dcm', 'decoded JPEG baseline (lossy), YBR_FULL'],
  ['small/JPGExtended.dcm', 'decoded 12-bit JPEG extended (lossy)'],
];

const LONG = new Set([
  'OB',
  'OW',
  'OF',
  'OD',
  'OL',
  'OV',
  'SQ',
  'UN',
  'UT',
  'UC',
  'UR',
  'SV',
  'UV',
]);
const PROTECTED_TAGS = new Set<number>([
  ...Object.values(BASIC_PROFILE_ACTIONS).flat(),
  ...MARKER_TAGS,
]);

type Ranges = [start: number, end: number][];

function byteRegion(ranges: Ranges): {
  bits: number;
  at: (n: number) => [number, number];
} {
  const total = ranges.reduce((s, [a, b]) => s + (b - a), 0);
  return {
    bits: total * 8,
    at: (n) => {
      let byte = n >> 3;
      for (const [a, b] of ranges) {
        if (byte < b - a) return [a + byte, n & 7];
        byte -= b - a;
      }
      throw new Error('bit beyond the region');
    },
  };
}

/** Protects and traces one sample, and maps its regions. */
export async function makeSubject(rel: string, kind: string, keys: TestKeys): Promise<Subject> {
  const source = new Uint8Array(readFileSync(samplePath(rel)));
  const p = await protect(source, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
  const bytes = await traceProtected(p.bytes, {
    signer: keys.cloud,
    traceId: traceIdFrom('reliability-campaign'),
  });
  const parsed = parseDicom(bytes);
  const g = geometryOf(pixelInfoOf(parsed.dataset));
  const report = inspectProtected(bytes);
  const L = report.layout!.planes;
  const K = report.layout!.regionSamples;
  const containerBytes = report.layout!.containerBytes;
  const pixelOffset = parsed.pixelDataOffset!;

  // Element ranges from an independent reader (dicom-parser), top level only.
  const ds = dicomParser.parseDicom(bytes);
  let metaEnd = 132;
  const clear: Ranges = [];
  const prot: Ranges = [];
  const eas: Ranges = [];
  let pixelValueEnd = 0;
  for (const [key, el] of Object.entries(ds.elements)) {
    const t = parseInt(key.slice(1), 16);
    const start = el.dataOffset - (LONG.has(el.vr!) ? 12 : 8);
    const end = el.dataOffset + el.length;
    if (t >>> 16 === 2) metaEnd = Math.max(metaEnd, end);
    else if (t === T.PixelData) {
      clear.push([start, el.dataOffset]);
      pixelValueEnd = end;
    } else if (t === T.EncryptedAttributesSequence) eas.push([start, end]);
    else if (PROTECTED_TAGS.has(t)) prot.push([start, end]);
    else clear.push([start, end]);
  }
  if (pixelValueEnd !== bytes.length) throw new Error(`${rel}: bytes after the pixel data`);

  const regions: Subject['regions'] = new Map();
  regions.set('preamble', byteRegion([[0, 128]]));
  regions.set('file meta', byteRegion([[128, metaEnd]]));
  regions.set('clear header', byteRegion(clear));
  regions.set('protected header attributes', byteRegion(prot));
  regions.set('Encrypted Attributes Sequence', byteRegion(eas));
  // Container bit n: plane L-1-(n mod L) of sample floor(n/L); the padding to the end of R with it.
  const containerBit = (n: number): [number, number] => {
    const i = Math.floor(n / L);
    const plane = L - 1 - (n % L);
    return [pixelOffset + i * g.wordBytes + (plane >> 3), plane & 7];
  };
  const sealedBits = (containerBytes - TRACE_SLOT_LENGTH) * 8;
  const padBits = K * L - containerBytes * 8;
  regions.set('container', {
    bits: sealedBits + padBits,
    at: (n) => containerBit(n < sealedBits ? n : n + TRACE_SLOT_LENGTH * 8),
  });
  regions.set('trace slot', {
    bits: TRACE_SLOT_LENGTH * 8,
    at: (n) => containerBit(sealedBits + n),
  });
  // Ciphertext: every bit of samples past R, the bits above the L planes within R, the pad byte.
  const wordBits = g.wordBytes * 8;
  const inR = K * (wordBits - L);
  const past = (g.count - K) * wordBits;
  const padBytes = pixelValueEnd - (pixelOffset + g.count * g.wordBytes);
  regions.set('ciphertext', {
    bits: inR + past + padBytes * 8,
    at: (n) => {
      if (n < inR) {
        const i = Math.floor(n / (wordBits - L));
        const bit = L + (n % (wordBits - L));
        return [pixelOffset + i * g.wordBytes + (bit >> 3), bit & 7];
      }
      n -= inR;
      if (n < past) {
        const i = K + Math.floor(n / wordBits);
        const bit = n % wordBits;
        return [pixelOffset + i * g.wordBytes + (bit >> 3), bit & 7];
      }
      n -= past;
      return [pixelOffset + g.count * g.wordBytes + (n >> 3), n & 7];
    },
  });
  return { rel, kind, bytes, imageKey: p.imageKey, regions };
}

export type Outcome = 'detected' | 'unverifiable' | 'accepted' | 'refused' | 'crashed';
export const OUTCOMES: readonly Outcome[] = [
  'detected',
  'unverifiable',
  'accepted',
  'refused',
  'crashed',
];

/** A verdict, or how reading failed: a typed error is a clear refusal, anything else a crash. */
export async function outcomeOf(run: () => Promise<Verdict>): Promise<{
  outcome: Outcome;
  detail: string;
}> {
  try {
    const v = await run();
    const outcome: Outcome =
      v.status === 'verified' ? 'accepted' : v.status === 'tampered' ? 'detected' : 'unverifiable';
    return { outcome, detail: v.summary };
  } catch (e) {
    if (isZtvError(e)) return { outcome: 'refused', detail: `${e.code}: ${e.message}` };
    return { outcome: 'crashed', detail: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

export interface FlipCounts {
  trials: number;
  keyedTrials: number;
  /** Keyless verification outcome per region. */
  byRegion: Map<Region, Record<Outcome, number>>;
  /** Keyed (open with the image key) outcome per region, for every `keyedEvery`-th trial. */
  keyedByRegion: Map<Region, Record<Outcome, number>>;
  /** Accepted flips and crashes, each a defect: file, region, byte, bit, what was said. */
  defects: { rel: string; region: Region; byte: number; bit: number; detail: string }[];
  /** Byte offsets within the region where a flip left the image unverifiable, per region. */
  unverifiableAt: Map<Region, Set<string>>;
  slowestMs: number;
}

const zero = (): Record<Outcome, number> => ({
  detected: 0,
  unverifiable: 0,
  accepted: 0,
  refused: 0,
  crashed: 0,
});

/**
 * `trials` single-bit flips, spread evenly over subjects and regions (region by region in turn, the
 * subject and the bit at random), each on a fresh copy, verified without key; every `keyedEvery`-th
 * also opened with the image key.
 */
export async function flipCampaign(
  subjects: readonly Subject[],
  keys: TestKeys,
  trials: number,
  seed = 17,
  keyedEvery = 4,
): Promise<FlipCounts> {
  const rnd = prng(seed);
  const c: FlipCounts = {
    trials: 0,
    keyedTrials: 0,
    byRegion: new Map(REGIONS.map((r) => [r, zero()])),
    keyedByRegion: new Map(REGIONS.map((r) => [r, zero()])),
    defects: [],
    unverifiableAt: new Map(),
    slowestMs: 0,
  };
  for (let t = 0; t < trials; t++) {
    const region = REGIONS[t % REGIONS.length]!;
    const s = subjects[Math.floor(rnd() * subjects.length)]!;
    const r = s.regions.get(region)!;
    if (r.bits === 0) continue;
    const [byte, bit] = r.at(Math.floor(rnd() * r.bits));
    const bad = s.bytes.slice();
    bad[byte] = bad[byte]! ^ (1 << bit);
    const started = performance.now();
    const keyless = await outcomeOf(() => verifyProtected(bad, { resolver: keys.resolver }));
    c.trials++;
    c.byRegion.get(region)![keyless.outcome]++;
    const results = [keyless];
    // Each round visits every region once: every keyedEvery-th round is also opened with the key.
    if (Math.floor(t / REGIONS.length) % keyedEvery === 0) {
      const keyed = await outcomeOf(async () => {
        const o = await openProtected(bad, { resolver: keys.resolver, imageKey: s.imageKey });
        return o.verdict;
      });
      c.keyedTrials++;
      c.keyedByRegion.get(region)![keyed.outcome]++;
      results.push(keyed);
    }
    c.slowestMs = Math.max(c.slowestMs, performance.now() - started);
    for (const o of results)
      if (o.outcome === 'accepted' || o.outcome === 'crashed')
        c.defects.push({ rel: s.rel, region, byte, bit, detail: `${o.outcome}: ${o.detail}` });
    if (keyless.outcome === 'unverifiable') {
      const set = c.unverifiableAt.get(region) ?? new Set<string>();
      set.add(describeUnverifiable(s, region, byte, keyless.detail));
      c.unverifiableAt.set(region, set);
    }
  }
  return c;
}

function describeUnverifiable(_s: Subject, _region: Region, _byte: number, detail: string): string {
  // The verdict's own words, without the hex of the key id (which differs per flip).
  return detail.replace(/[0-9a-f]{16,}/g, '…').replace(/version \d+/g, 'version N');
}

export interface DamageCounts {
  truncations: number;
  garbage: number;
  /** Outcome per kind of damage. */
  byKind: Map<string, Record<Outcome, number>>;
  defects: { kind: string; rel: string; length: number; detail: string }[];
  slowestMs: number;
}

/**
 * Truncation at random lengths (of every subject) and random garbage (bare bytes, bytes behind a
 * valid preamble and `DICM`, a valid protected file's head followed by garbage): each must end in a
 * typed error or a verdict other than verified, within bounded time.
 */
export async function damageCampaign(
  subjects: readonly Subject[],
  keys: TestKeys,
  truncations: number,
  garbage: number,
  seed = 71,
): Promise<DamageCounts> {
  const rnd = prng(seed);
  const c: DamageCounts = {
    truncations: 0,
    garbage: 0,
    byKind: new Map(),
    defects: [],
    slowestMs: 0,
  };
  const random = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  };
  const attempt = async (kind: string, rel: string, bytes: Uint8Array): Promise<void> => {
    const started = performance.now();
    const o = await outcomeOf(() => verifyProtected(bytes, { resolver: keys.resolver }));
    c.slowestMs = Math.max(c.slowestMs, performance.now() - started);
    const counts = c.byKind.get(kind) ?? zero();
    counts[o.outcome]++;
    c.byKind.set(kind, counts);
    if (o.outcome === 'accepted' || o.outcome === 'crashed')
      c.defects.push({ kind, rel, length: bytes.length, detail: `${o.outcome}: ${o.detail}` });
  };
  for (let t = 0; t < truncations; t++) {
    const s = subjects[t % subjects.length]!;
    // Half anywhere, half within the last 4 KiB (inside the pixel data, where the container is not).
    const length =
      t % 2
        ? Math.floor(rnd() * s.bytes.length)
        : Math.max(0, s.bytes.length - 1 - Math.floor(rnd() * 4096));
    await attempt('truncated', s.rel, s.bytes.slice(0, length));
    c.truncations++;
  }
  for (let t = 0; t < garbage; t++) {
    const s = subjects[t % subjects.length]!;
    const length = Math.floor(rnd() * 65536);
    let bytes: Uint8Array;
    let kind: string;
    if (t % 3 === 0) {
      kind = 'garbage';
      bytes = random(length);
    } else if (t % 3 === 1) {
      kind = 'garbage after DICM';
      bytes = new Uint8Array(132 + length);
      bytes.set([0x44, 0x49, 0x43, 0x4d], 128);
      bytes.set(random(length), 132);
    } else {
      kind = 'protected head, garbage tail';
      const cut = Math.floor(rnd() * s.bytes.length);
      bytes = new Uint8Array(cut + length);
      bytes.set(s.bytes.subarray(0, cut));
      bytes.set(random(length), cut);
    }
    await attempt(kind, s.rel, bytes);
    c.garbage++;
  }
  return c;
}

export async function subjects(
  list: readonly [string, string][] = SUBJECTS,
): Promise<{ keys: TestKeys; subjects: Subject[] }> {
  const keys = await testKeys();
  const out: Subject[] = [];
  for (const [rel, kind] of list) out.push(await makeSubject(rel, kind, keys));
  return { keys, subjects: out };
}
