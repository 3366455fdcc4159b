// The zt: image loader and metadata provider, through Cornerstone's own imageLoader and metaData (in
// Node, no rendering): what a worker opened from a real protected CT slice reaches Cornerstone in
// modality units, pre-scaled, with its geometry; the loader waits for images still on their way,
// fails with the reason for those that cannot be shown, and follows the study that is open.
import { readFileSync } from 'node:fs';
import { imageLoader, metaData } from '@cornerstonejs/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleFiles } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { protect, traceIdFrom, traceProtected } from '../../core/protect/index.ts';
import { DecodeJob } from '../pipeline/job.ts';
import { keysTicket, testTrust } from '../../../test/pipeline.ts';
import {
  imageIdOf,
  parseImageId,
  registerZtImages,
  WARMUP_IMAGE_ID,
  type OpenedInstance,
} from './images.ts';

const file = sampleFiles('series/ct_chest_LIDC-IDRI-0314')[3]!;
let inst: OpenedInstance;

beforeAll(async () => {
  const trust = await testTrust();
  const p = await protect(new Uint8Array(readFileSync(file)), {
    signer: trust.producer,
    pseudonymKey: new Uint8Array(32),
  });
  const bytes = await traceProtected(p.bytes, { signer: trust.cloud, traceId: traceIdFrom('t') });
  const job = new DecodeJob();
  await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
  await job.handle({ ...(await keysTicket(trust, [{ ref: 'ct', key: p.imageKey }])), id: 2 });
  const r = await job.handle({ kind: 'open', id: 3, ref: 'ct', bytes: bytes.slice().buffer });
  if (r.message.kind !== 'opened' || !r.message.meta) throw new Error('not opened');
  const m = r.message;
  inst = { ref: 'ct', verdict: m.verdict, meta: m.meta!, frames: m.frames, header: m.header };
});

const ds = () => parseDicom(new Uint8Array(readFileSync(file))).dataset;

describe('the zt: loader', () => {
  it('names images by reference and frame, and reads the names back', () => {
    expect(imageIdOf('7.a/b')).toBe('zt:7.a%2Fb');
    expect(parseImageId(imageIdOf('7.a/b'))).toEqual({ ref: '7.a/b', frame: 1 });
    expect(parseImageId(imageIdOf('x', 3, 8))).toEqual({ ref: 'x', frame: 3 });
    expect(() => parseImageId('wadouri:x')).toThrow(/not a zt image id/);
  });

  it('hands Cornerstone the restored slice in Hounsfield units, pre-scaled, with its geometry', async () => {
    registerZtImages(async () => inst, new Map([['ct', inst]]));
    const image = await imageLoader.loadImage(imageIdOf('ct'));
    const d = ds();
    expect([image.rows, image.columns]).toEqual([512, 512]);
    const px = image.getPixelData() as Int16Array;
    expect(px).toBeInstanceOf(Int16Array);
    // The HU of one pixel, computed here from the original file.
    const raw = d.get(0x7fe00010)!.value!;
    const i = 300 * 512 + 200;
    const stored = (raw[2 * i]! | (raw[2 * i + 1]! << 8)) & 0x0fff;
    expect(px[i]).toBe(stored * (d.number(0x00281053) ?? 1) + (d.number(0x00281052) ?? 0));
    expect(image.preScale?.scaled).toBe(true);
    expect(image.slope).toBe(1);
    expect(image.intercept).toBe(0);
    expect(image.windowCenter).toBe(-450);
    expect(image.windowWidth).toBe(2000);
    expect(image.voxelManager).toBeDefined();
    const plane = metaData.get('imagePlaneModule', imageIdOf('ct')) as {
      imagePositionPatient: number[];
      pixelSpacing: number[];
    };
    expect(plane.imagePositionPatient).toEqual(
      d
        .text(0x00200032)!
        .split('\\')
        .map((x) => Number(x)),
    );
    expect(plane.pixelSpacing[0]).toBeCloseTo(Number(d.text(0x00280030)!.split('\\')[0]), 6);
    expect(
      (metaData.get('imagePixelModule', imageIdOf('ct')) as { pixelRepresentation: number })
        .pixelRepresentation,
    ).toBe(1);
  });

  it('waits for an image still streaming, and rejects one that cannot be shown', async () => {
    let arrive: (i: OpenedInstance) => void = () => undefined;
    const later = new Promise<OpenedInstance>((r) => (arrive = r));
    registerZtImages(
      (ref) =>
        ref === 'late' ? later : Promise.reject(new Error('the image was tampered beyond display')),
      new Map(),
    );
    let done = false;
    const loading = imageLoader.loadImage(imageIdOf('late')).then((im) => {
      done = true;
      return im;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    arrive(inst);
    expect((await loading).rows).toBe(512);
    await expect(imageLoader.loadImage(imageIdOf('broken'))).rejects.toThrow(
      /tampered beyond display/,
    );
  });

  it('follows the study that is open, and always has the warm-up image', async () => {
    registerZtImages(async () => inst, new Map([['first', inst]]));
    expect(metaData.get('imagePlaneModule', imageIdOf('first'))).toBeDefined();
    registerZtImages(async () => inst, new Map([['second', inst]]));
    expect(metaData.get('imagePlaneModule', imageIdOf('first'))).toBeUndefined();
    expect(metaData.get('imagePlaneModule', imageIdOf('second'))).toBeDefined();
    const warm = await imageLoader.loadImage(WARMUP_IMAGE_ID);
    expect([warm.rows, warm.columns]).toEqual([512, 512]);
    expect(metaData.get('generalSeriesModule', WARMUP_IMAGE_ID)).toBeDefined();
  });
});
