// Explicit VR Big Endian pixel data is swapped by the word of its VR (PS3.5 2016b 7.3 and 8.1.1):
// OW 16 bits at a time whatever Bits Allocated says (pixel cells are packed into 16-bit words, a
// 32-bit cell is two words, low word first), OF 32 bits, OB not at all. DCMTK writes 32-bit samples
// that way (dcmconv +tb); pydicom 2.3 swaps them 32 bits at a time and reads other values.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { openProtected, protect } from '../protect/index.ts';
import { parseDicom } from './parse.ts';
import { readPixelData } from './pixels.ts';
import { TS } from './tags.ts';

const dir = mkdtempSync(join(tmpdir(), 'ztv-bigendian-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An Explicit VR Big Endian element: tag, VR, length (2 or 4 bytes), value as given. */
function el(group: number, element: number, vr: string, value: number[]): number[] {
  const long = ['OB', 'OW', 'OF', 'OL', 'UN', 'SQ'].includes(vr);
  const len = value.length;
  return [
    group >> 8,
    group & 0xff,
    element >> 8,
    element & 0xff,
    vr.charCodeAt(0),
    vr.charCodeAt(1),
    ...(long ? [0, 0, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff] : []),
    ...(long ? [] : [len >> 8, len & 0xff]),
    ...value,
  ];
}
const us = (g: number, e: number, v: number) => el(g, e, 'US', [v >> 8, v & 0xff]);

/** A 2x1 greyscale image whose pixel data element is given. */
function image(bits: number, pixel: number[]): Uint8Array {
  return Uint8Array.from([
    ...us(0x0028, 0x0002, 1),
    ...el(
      0x0028,
      0x0004,
      'CS',
      [...'MONOCHROME2 '].map((c) => c.charCodeAt(0)),
    ),
    ...us(0x0028, 0x0010, 1),
    ...us(0x0028, 0x0011, 2),
    ...us(0x0028, 0x0100, bits),
    ...us(0x0028, 0x0101, bits),
    ...us(0x0028, 0x0102, bits - 1),
    ...us(0x0028, 0x0103, 0),
    ...pixel,
  ]);
}

const pixels = async (bytes: Uint8Array) =>
  (await readPixelData(parseDicom(bytes, 'the image', { bareSyntax: TS.ExplicitBig }))).data;

describe('Explicit VR Big Endian pixel data is swapped by the word of its VR', () => {
  it('32-bit samples in OW: two 16-bit words, low word first, each big endian', async () => {
    // Samples 0x11223344 and 0xA1B2C3D4: words 0x3344 0x1122 and 0xC3D4 0xA1B2.
    const px = await pixels(
      image(32, el(0x7fe0, 0x0010, 'OW', [0x33, 0x44, 0x11, 0x22, 0xc3, 0xd4, 0xa1, 0xb2])),
    );
    const v = new DataView(px.buffer, px.byteOffset, px.byteLength);
    expect([v.getUint32(0, true), v.getUint32(4, true)]).toEqual([0x11223344, 0xa1b2c3d4]);
  });

  it('8-bit samples in OW are swapped too (OW is a string of 16-bit words); in OB they are not', async () => {
    expect([...(await pixels(image(8, el(0x7fe0, 0x0010, 'OW', [2, 1]))))]).toEqual([1, 2]);
    expect([...(await pixels(image(8, el(0x7fe0, 0x0010, 'OB', [1, 2]))))]).toEqual([1, 2]);
  });

  it('Float Pixel Data (OF) is swapped 32 bits at a time', async () => {
    const be = new Uint8Array(8);
    new DataView(be.buffer).setFloat32(0, 1.5, false);
    new DataView(be.buffer).setFloat32(4, -2.25, false);
    const bytes = Uint8Array.from([
      ...us(0x0028, 0x0002, 1),
      ...us(0x0028, 0x0010, 1),
      ...us(0x0028, 0x0011, 2),
      ...el(0x7fe0, 0x0008, 'OF', [...be]),
    ]);
    const px = await pixels(bytes);
    const v = new DataView(px.buffer, px.byteOffset, px.byteLength);
    expect([v.getFloat32(0, true), v.getFloat32(4, true)]).toEqual([1.5, -2.25]);
  });

  it('a 32-bit RT Dose DCMTK wrote big endian protects and opens to the little-endian original', async () => {
    const source = samplePath('small/rtdose.dcm');
    const be = join(dir, 'rtdose_be.dcm');
    execFileSync('dcmconv', ['+tb', source, be]);
    const beBytes = new Uint8Array(readFileSync(be));
    const beParsed = parseDicom(beBytes, 'rtdose_be.dcm');
    expect(beParsed.transferSyntax).toBe(TS.ExplicitBig);
    const le = await readPixelData(parseDicom(new Uint8Array(readFileSync(source)), 'rtdose.dcm'));
    expect(le.info.bitsAllocated).toBe(32);
    const read = await readPixelData(beParsed);
    expect(Buffer.from(read.data).equals(Buffer.from(le.data))).toBe(true);

    const keys = await testKeys();
    const p = await protect(beBytes, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
    const opened = await openProtected(p.bytes, { resolver: keys.resolver, imageKey: p.imageKey });
    expect(opened.verdict.status, opened.verdict.summary).toBe('verified');
    expect(Buffer.from(opened.restored!.pixels).equals(Buffer.from(le.data))).toBe(true);
    // DCMTK agrees: its own little-endian rendering of the big-endian file has the same pixels.
    const back = join(dir, 'rtdose_le.dcm');
    execFileSync('dcmconv', ['+te', be, back]);
    const dcmtk = await readPixelData(parseDicom(new Uint8Array(readFileSync(back)), 'back'));
    expect(Buffer.from(dcmtk.data).equals(Buffer.from(le.data))).toBe(true);
  });
});
