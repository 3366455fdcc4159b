// Inflating with a cap: ordinary data inflates to itself; a bomb (200 KB that inflates to 200 MB,
// the attack of issue 16 §2) is refused once past the cap, and so is a deflated DICOM data set,
// before parseDicom holds it all, and a Deflated Image Frame beyond its declared geometry; data that
// does not inflate is refused with its sentence.
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { deflateBomb, deflatedDicomBomb } from '../../test/deflate-bomb.ts';
import { samplePath } from '../../test/samples.ts';
import { decodeFrame } from './dicom/codecs/index.ts';
import { parseDicom } from './dicom/parse.ts';
import { TS } from './dicom/tags.ts';
import { inflateCapped } from './inflate.ts';

describe('inflateCapped', () => {
  it('inflates ordinary data to itself, in one piece or many', () => {
    const text = new TextEncoder().encode('a DICOM data set, or anything else, '.repeat(5000));
    const deflated = new Uint8Array(deflateRawSync(text));
    expect(inflateCapped(deflated, text.length, 'the data')).toEqual(text);
    expect(inflateCapped(new Uint8Array(deflateRawSync(new Uint8Array(0))), 0, 'nothing')).toEqual(
      new Uint8Array(0),
    );
  });

  it('refuses a bomb once past the cap, with a sentence', () => {
    const bomb = deflateBomb(200);
    expect(bomb.length).toBeLessThan(250_000);
    expect(() => inflateCapped(bomb, 128 * 1024 * 1024, 'the bomb')).toThrow(
      expect.objectContaining({
        code: 'unsupported',
        message: 'the bomb inflates to more than 134217728 bytes, the most this reader accepts',
      }),
    );
    expect(() => inflateCapped(deflateBomb(2), 1024 * 1024, 'the bomb')).toThrow(/more than/);
    expect(inflateCapped(deflateBomb(2), 2 * 1024 * 1024, 'two MiB').length).toBe(2 * 1024 * 1024);
  });

  it('refuses what does not inflate', () => {
    expect(() => inflateCapped(new Uint8Array([0xff, 0xff, 0xff, 0xff]), 1000, 'junk')).toThrow(
      expect.objectContaining({ code: 'not-dicom', message: 'junk does not inflate' }),
    );
  });

  it('parseDicom reads a real deflated file and refuses a deflated data set beyond its cap', () => {
    const real = new Uint8Array(readFileSync(samplePath('small/image_dfl.dcm')));
    expect(parseDicom(real).dataset.size).toBeGreaterThan(10);
    expect(() => parseDicom(real, 'the file', { maxInflated: 1000 })).toThrow(/more than 1000/);
    expect(() => parseDicom(deflatedDicomBomb(200), 'the bomb')).toThrow(
      expect.objectContaining({
        code: 'unsupported',
        message: expect.stringContaining(
          'the deflated data set of the bomb inflates to more than 134217728 bytes',
        ),
      }),
    );
  });

  it('inflates a Deflated Image Frame no further than the frame its header announces', async () => {
    const g = { rows: 512, columns: 512, samplesPerPixel: 1, bitsAllocated: 8, signed: false };
    const frame = new Uint8Array(deflateRawSync(new Uint8Array(512 * 512).fill(7)));
    expect((await decodeFrame(TS.DeflatedImageFrame, frame, g, 'MONOCHROME2')).bytes).toEqual(
      new Uint8Array(512 * 512).fill(7),
    );
    // 200 MB behind a 512×512 frame of 8 bits: refused past 256 KiB and a little padding.
    await expect(
      decodeFrame(TS.DeflatedImageFrame, deflateBomb(200), g, 'MONOCHROME2'),
    ).rejects.toMatchObject({
      code: 'unsupported',
      message: expect.stringContaining('a Deflated Image Frame inflates to more than 327680 bytes'),
    });
  });
});
