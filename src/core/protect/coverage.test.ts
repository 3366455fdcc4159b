// What the seal covers in the clear file (issue 20): single-bit flips that used to verify — a VR
// ("US" → "\x15S", "IS" → "IR"), the File Meta (Media Storage SOP Instance UID, Transfer Syntax,
// Implementation Class UID), reserved bytes of long-VR headers, a sequence length — and the
// preamble and the pixel data's pad byte are now each caught, and a sweep flipping one bit in every
// byte outside the pixel data never yields "verified".
import { readFileSync } from 'node:fs';
import dicomParser from 'dicom-parser';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { isZtvError } from '../errors.ts';
import { openProtected, traceIdFrom, traceProtected, verifyProtected } from './index.ts';
import { protect } from './protect.ts';
import type { Verdict } from './verdict.ts';

let keys: TestKeys;
const made = new Map<string, { bytes: Uint8Array; imageKey: Uint8Array }>();
beforeAll(async () => {
  keys = await testKeys();
  for (const rel of ['small/MR_small.dcm', 'small/dx_image.dcm']) {
    const p = await protect(new Uint8Array(readFileSync(samplePath(rel))), {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
    });
    const bytes = await traceProtected(p.bytes, {
      signer: keys.cloud,
      traceId: traceIdFrom('coverage'),
    });
    made.set(rel, { bytes, imageKey: p.imageKey });
  }
});

const mr = () => made.get('small/MR_small.dcm')!;

/** Where each top-level element's header starts in the file, by tag ("x00280102"). */
function headers(bytes: Uint8Array): Map<string, { start: number; el: dicomParser.Element }> {
  const ds = dicomParser.parseDicom(bytes);
  const out = new Map<string, { start: number; el: dicomParser.Element }>();
  for (const [tag, el] of Object.entries(ds.elements)) {
    const long = ['OB', 'OW', 'OF', 'SQ', 'UN', 'UT', 'UC', 'UR', 'OL', 'OD', 'OV'].includes(
      el.vr!,
    );
    out.set(tag, { start: el.dataOffset - (long ? 12 : 8), el });
  }
  return out;
}

const flipped = (b: Uint8Array, at: number, mask: number): Uint8Array => {
  const c = b.slice();
  c[at] = c[at]! ^ mask;
  return c;
};

const failed = (v: Verdict): string[] =>
  v.checks.filter((c) => c.result === 'fail').map((c) => c.id);

async function verdicts(bytes: Uint8Array, imageKey: Uint8Array): Promise<Verdict[]> {
  const keyless = await verifyProtected(bytes, { resolver: keys.resolver });
  const keyed = (await openProtected(bytes, { resolver: keys.resolver, imageKey })).verdict;
  return [keyless, keyed];
}

describe('the clear file is bound byte for byte', () => {
  it('the intact file verifies, with the File Meta and encoding checks passing', async () => {
    for (const v of await verdicts(mr().bytes, mr().imageKey)) {
      expect(v.status, v.summary).toBe('verified');
      const passed = v.checks.filter((c) => c.result === 'pass').map((c) => c.id);
      expect(passed).toEqual(expect.arrayContaining(['header.meta', 'header.encoding']));
    }
  });

  const cases: [string, (b: Uint8Array) => [number, number], string[]][] = [
    [
      'High Bit\'s VR "US" → "\\x15S"',
      (b) => [headers(b).get('x00280102')!.start + 4, 0x40],
      ['header.encoding'],
    ],
    [
      'a VR "IS" → "IR"',
      (b) => {
        const is = [...headers(b).values()].find((h) => h.el.vr === 'IS')!;
        return [is.start + 5, 0x01];
      },
      ['header.encoding'],
    ],
    [
      'the Media Storage SOP Instance UID',
      (b) => [headers(b).get('x00020003')!.el.dataOffset + 6, 0x01],
      ['header.meta', 'header.encoding'],
    ],
    [
      'the Transfer Syntax UID ("…1.2.1" → "…1.2.0")',
      (b) => {
        const el = headers(b).get('x00020010')!.el;
        return [el.dataOffset + 18, 0x01];
      },
      ['header.meta', 'header.encoding'],
    ],
    [
      'the Implementation Class UID',
      (b) => [headers(b).get('x00020012')!.el.dataOffset + 10, 0x02],
      ['header.encoding'],
    ],
    [
      'a reserved byte of the Encrypted Attributes Sequence header',
      (b) => [headers(b).get('x04000500')!.start + 6, 0x01],
      ['header.encoding'],
    ],
    [
      'a reserved byte of the Pixel Data header',
      (b) => [headers(b).get('x7fe00010')!.start + 7, 0x80],
      ['header.encoding'],
    ],
    ['the preamble', () => [17, 0x04], ['header.encoding']],
  ];

  it.each(cases)('a flipped bit in %s is tampering', async (_, where, expected) => {
    const [at, mask] = where(mr().bytes);
    const bad = flipped(mr().bytes, at, mask);
    for (const v of await verdicts(bad, mr().imageKey)) {
      expect(v.status, v.summary).toBe('tampered');
      expect(failed(v)).toEqual(expect.arrayContaining(expected));
      expect(v.tampered).toContain('header');
    }
    // The cloud refuses to trace a malformed file.
    let err: unknown;
    try {
      await traceProtected(bad, { signer: keys.cloud, traceId: traceIdFrom('x') });
    } catch (e) {
      err = e;
    }
    expect(isZtvError(err) && err.code).toBe('integrity');
  });

  it('a flipped bit in a sequence or item length is never verified', async () => {
    const sq = headers(mr().bytes).get('x04000500')!;
    // The sequence's length (bytes 8–11 of its header) and its first item's length (after FFFE,E000).
    for (const at of [sq.start + 8, sq.start + 9, sq.el.dataOffset + 4, sq.el.dataOffset + 5])
      for (let bit = 0; bit < 8; bit++) {
        const bad = flipped(mr().bytes, at, 1 << bit);
        try {
          const v = await verifyProtected(bad, { resolver: keys.resolver });
          expect(v.status, `byte ${at} bit ${bit}: ${v.summary}`).not.toBe('verified');
        } catch (e) {
          expect(isZtvError(e), String(e)).toBe(true);
        }
      }
  });

  it("the pixel data's pad byte must be zero", async () => {
    const { bytes, imageKey } = made.get('small/dx_image.dcm')!;
    const px = headers(bytes).get('x7fe00010')!.el;
    expect(px.length % 2).toBe(0);
    expect(35659 % 2).toBe(1); // 169 x 211 8-bit samples: one pad byte
    const bad = flipped(bytes, px.dataOffset + px.length - 1, 0x01);
    for (const v of await verdicts(bad, imageKey)) {
      expect(v.status, v.summary).toBe('tampered');
      expect(failed(v)).toContain('header.encoding');
    }
  });

  it('one flipped bit in each byte outside the pixel data: never verified', async () => {
    const { bytes } = mr();
    const px = headers(bytes).get('x7fe00010')!.el;
    let tampered = 0;
    let refused = 0;
    for (let at = 0; at < px.dataOffset; at++) {
      const bad = flipped(bytes, at, 1 << (at % 8));
      try {
        const v = await verifyProtected(bad, { resolver: keys.resolver });
        expect(v.status, `byte ${at}: ${v.summary}`).not.toBe('verified');
        tampered++;
      } catch (e) {
        expect(isZtvError(e), `byte ${at}: ${String(e)}`).toBe(true);
        refused++;
      }
    }
    expect(tampered + refused).toBe(px.dataOffset);
    expect(tampered).toBeGreaterThan(refused);
  }, 300_000);
});
