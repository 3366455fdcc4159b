// What the viewer draws equals what pydicom computes from the original file: modality values for grey
// images (rescale, Modality LUT, sign, masked high bits) and RGB for colour (palette, YBR, planes).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { readPixelData } from '../../core/dicom/pixels.ts';
import { displayFrame, displayMeta } from './display.ts';

function reference(rel: string, frame: number): { shape: number[]; values: number[] } {
  return JSON.parse(
    execFileSync(
      '/usr/bin/python3',
      [`${REPO_ROOT}/test/pydicom_display.py`, samplePath(rel), String(frame)],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 28,
      },
    ),
  ) as { shape: number[]; values: number[] };
}

describe('display values match pydicom', () => {
  it.each([
    ['series/ct_chest_LIDC-IDRI-0314/000002.dcm', 0, 0], // rescale to HU
    ['small/CT_small.dcm', 0, 0], // signed
    ['small/mlut_18.dcm', 0, 0], // Modality LUT Sequence
    ['small/gdcm-CR-MONO1-10-chest.dcm', 0, 0], // MONOCHROME1
    ['odd/12bitUnsigned_0x0F0F.dcm', 0, 0], // garbage above Bits Stored
    ['odd/12bitSigned_0x0F0F.dcm', 0, 0],
    ['small/emri_small.dcm', 7, 0], // a later frame
    ['small/parametric_map_float.dcm', 0, 1e-6],
    ['small/SC_rgb.dcm', 0, 0],
    ['small/color-pl.dcm', 0, 0], // colour by plane
    ['small/SC_ybr_full_422_uncompressed.dcm', 0, 1], // YBR conversion rounding
    ['small/OBXXXX1A_rle.dcm', 0, 0], // palette
  ])('%s frame %i', async (rel, frame, tolerance) => {
    const parsed = parseDicom(new Uint8Array(readFileSync(samplePath(rel))));
    const px = await readPixelData(parsed);
    const got = displayFrame(parsed.dataset, px.info, px.data, frame);
    const ref = reference(rel, frame);
    expect(got.pixels.length).toBe(ref.values.length);
    let worst = 0;
    for (let i = 0; i < ref.values.length; i++)
      worst = Math.max(worst, Math.abs(got.pixels[i]! - ref.values[i]!));
    expect(worst).toBeLessThanOrEqual(tolerance);
  });

  it('reads geometry and windowing for the viewport', () => {
    const parsed = parseDicom(
      new Uint8Array(readFileSync(samplePath('series/ct_chest_LIDC-IDRI-0314/000002.dcm'))),
    );
    const m = displayMeta(parsed.dataset, {
      rows: 512,
      columns: 512,
      frames: 1,
      samplesPerPixel: 1,
      bitsAllocated: 16,
      bitsStored: 12,
      pixelRepresentation: 0,
      planarConfiguration: 0,
      photometric: 'MONOCHROME2',
      pixelTag: 0x7fe00010,
    });
    expect(m.pixelSpacing?.[0]).toBeCloseTo(0.78125, 4);
    expect(m.imagePosition?.length).toBe(3);
    expect(m.rescaleIntercept).toBe(-1000);
    expect(m.windowWidth).toBeGreaterThan(0);
    expect(m.patientId).toBe('LIDC-IDRI-0314');
  });
});
