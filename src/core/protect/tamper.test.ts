// Tamper evidence: a single flipped bit anywhere — encrypted pixels, sealed container, padding, trace
// slot, encrypted attributes, clear header — is detected, and pixel tampering is localized to its tile.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { prng, testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../dicom/parse.ts';
import { pixelInfoOf } from '../dicom/pixels.ts';
import { T } from '../dicom/tags.ts';
import { isZtvError } from '../errors.ts';
import { regionSamples, traceSlotLength } from './container.ts';
import { geometryOf, tileGrid, type Geometry } from './geometry.ts';
import {
  inspectProtected,
  openProtected,
  traceIdFrom,
  traceProtected,
  verifyProtected,
} from './index.ts';
import { protect } from './protect.ts';

let keys: TestKeys;
beforeAll(async () => {
  keys = await testKeys();
});

interface Subject {
  bytes: Uint8Array;
  imageKey: Uint8Array;
  g: Geometry;
  pixelOffset: number;
  L: number;
  K: number;
  containerBytes: number;
  tileSide: number;
  /** The trace slot's length and where its cloud key id lies in it (format v1 or v2). */
  slotBytes: number;
  keyIdAt: number;
}

async function subject(rel: string): Promise<Subject> {
  const input = new Uint8Array(readFileSync(samplePath(rel)));
  const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
  const bytes = await traceProtected(p.bytes, {
    signer: keys.cloud,
    traceId: traceIdFrom('ticket-42'),
  });
  const parsed = parseDicom(bytes);
  const report = inspectProtected(bytes);
  const L = report.layout!.planes;
  return {
    bytes,
    imageKey: p.imageKey,
    g: geometryOf(pixelInfoOf(parsed.dataset)),
    pixelOffset: parsed.pixelDataOffset!,
    L,
    K: regionSamples(report.layout!.containerBytes, L),
    containerBytes: report.layout!.containerBytes,
    tileSide: report.layout!.tiles.side,
    slotBytes: traceSlotLength(report.version),
    keyIdAt: report.version >= 2 ? 68 : 44,
  };
}

const flip = (b: Uint8Array, byte: number, bit: number): Uint8Array => {
  const out = b.slice();
  out[byte] = out[byte]! ^ (1 << bit);
  return out;
};

/** File byte and bit of container bit n. */
function containerBit(s: Subject, n: number): [number, number] {
  const i = Math.floor(n / s.L);
  const plane = s.L - 1 - (n % s.L);
  return [s.pixelOffset + i * s.g.wordBytes + (plane >> 3), plane & 7];
}

/** Frame (from 1) and tile index of sample i. */
function tileOf(s: Subject, i: number): { frame: number; index: number } {
  const { g } = s;
  const grid = tileGrid(g, s.tileSide);
  const frameSamples = g.rows * g.cols * g.spp;
  const frame = Math.floor(i / frameSamples);
  const inFrame = i % frameSamples;
  const unit = g.planar ? inFrame % (g.rows * g.cols) : Math.floor(inFrame / g.spp);
  const y = Math.floor(unit / g.cols);
  const x = unit % g.cols;
  return {
    frame: frame + 1,
    index: Math.floor(y / s.tileSide) * grid.across + Math.floor(x / s.tileSide),
  };
}

const FILES = [
  'small/CT_small.dcm',
  'small/SC_rgb.dcm',
  'small/emri_small.dcm',
  'small/color-pl.dcm',
];
const FLIPS = 12;

describe.each(FILES)('%s', (rel) => {
  let s: Subject;
  beforeAll(async () => {
    s = await subject(rel);
  });

  it('is verified untouched', async () => {
    expect(
      (await openProtected(s.bytes, { resolver: keys.resolver, imageKey: s.imageKey })).verdict
        .status,
    ).toBe('verified');
  });

  it('detects and localizes flipped pixel bits, with and without the key', async () => {
    const rnd = prng(1);
    for (let n = 0; n < FLIPS; n++) {
      // Any stored bit outside the container planes: all bits of samples past R, high bits within R.
      const i = Math.floor(rnd() * s.g.count);
      const lowest = i < s.K ? s.L : 0;
      const bit = lowest + Math.floor(rnd() * (s.g.wordBytes * 8 - lowest));
      const bad = flip(s.bytes, s.pixelOffset + i * s.g.wordBytes + (bit >> 3), bit & 7);
      const keyless = await verifyProtected(bad, { resolver: keys.resolver });
      expect(keyless.status).toBe('tampered');
      expect(keyless.tampered).toEqual(['pixels']);
      expect(keyless.tiles.map((t) => ({ frame: t.frame, index: t.index }))).toEqual([
        tileOf(s, i),
      ]);
      const keyed = await openProtected(bad, { resolver: keys.resolver, imageKey: s.imageKey });
      expect(keyed.verdict.status).toBe('tampered');
      expect(
        keyed.verdict.checks.find((c) => c.id === 'pixels.original' || c.id === 'pixels.restore')
          ?.result,
      ).toBe('fail');
    }
  });

  it('detects flipped bits of the sealed container', async () => {
    const rnd = prng(2);
    for (let n = 0; n < FLIPS; n++) {
      const sealedBits = (s.containerBytes - s.slotBytes) * 8;
      const bitNo = Math.floor(rnd() * sealedBits);
      const bad = flip(s.bytes, ...containerBit(s, bitNo));
      const v = await verifyProtected(bad, { resolver: keys.resolver });
      const inKeyId = bitNo >= 88 * 8 && bitNo < 104 * 8;
      // A damaged signer key id names no trusted key: that is "cannot verify", never "verified".
      expect(v.status, `container bit ${bitNo}: ${v.summary}`).toBe(
        inKeyId ? 'unverifiable' : 'tampered',
      );
    }
  });

  it('detects flipped bits of the trace', async () => {
    const rnd = prng(3);
    const from = (s.containerBytes - s.slotBytes) * 8;
    for (let n = 0; n < FLIPS; n++) {
      const inSlot = Math.floor(rnd() * s.slotBytes * 8);
      const bad = flip(s.bytes, ...containerBit(s, from + inSlot));
      const v = await verifyProtected(bad, { resolver: keys.resolver });
      const inKeyId = inSlot >= s.keyIdAt * 8 && inSlot < (s.keyIdAt + 16) * 8;
      expect(v.status, `trace bit ${inSlot}: ${v.summary}`).toBe(
        inKeyId ? 'unverifiable' : 'tampered',
      );
      if (!inKeyId) expect(v.tampered).toEqual(['trace']);
    }
  });

  it('detects flipped bits of the encrypted attributes and of the clear header', async () => {
    const ds = parseDicom(s.bytes).dataset;
    const cms = ds.get(T.EncryptedAttributesSequence)!.items![0]!.get(T.EncryptedContent)!.value!;
    const at = Buffer.from(s.bytes).indexOf(Buffer.from(cms));
    expect(at).toBeGreaterThan(0);
    const rnd = prng(4);
    for (let n = 0; n < FLIPS; n++) {
      const bad = flip(s.bytes, at + Math.floor(rnd() * cms.length), Math.floor(rnd() * 8));
      const keyless = await verifyProtected(bad, { resolver: keys.resolver });
      expect(keyless.tampered).toEqual(['header']);
      const keyed = await openProtected(bad, { resolver: keys.resolver, imageKey: s.imageKey });
      expect(keyed.verdict.status).toBe('tampered');
    }
    const modality = Buffer.from(s.bytes).indexOf(
      Buffer.from([0x08, 0x00, 0x60, 0x00, 0x43, 0x53]),
    );
    if (modality > 0) {
      const bad = flip(s.bytes, modality + 8, 1);
      expect((await verifyProtected(bad, { resolver: keys.resolver })).tampered).toEqual([
        'header',
      ]);
    }
  });

  it('refuses a wrong image key with a clear error, not a tampering verdict', async () => {
    const wrong = s.imageKey.slice();
    wrong[0] = wrong[0]! ^ 1;
    const err = await openProtected(s.bytes, { resolver: keys.resolver, imageKey: wrong }).catch(
      (e: unknown) => e,
    );
    expect(isZtvError(err) && err.code).toBe('wrong-key');
  });
});

describe('signers', () => {
  it('an image sealed by an unknown producer cannot be verified', async () => {
    const s = await subject('small/MR_small.dcm');
    const other = await testKeys();
    const v = await verifyProtected(s.bytes, { resolver: other.resolver });
    expect(v.status).toBe('unverifiable');
    expect(v.summary).toMatch(/not trusted/);
  });

  it('a container whose magic lost a bit is reported as damaged, not as absent', async () => {
    const s = await subject('small/MR_small.dcm');
    const bad = flip(s.bytes, ...containerBit(s, 5));
    const v = await verifyProtected(bad, { resolver: keys.resolver });
    expect(v.status).toBe('tampered');
    expect(v.checks.find((c) => c.id === 'container.magic')?.result).toBe('fail');
  });
});
