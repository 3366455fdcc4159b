// What a distance is measured in, from real files' headers through the viewer's display metadata and
// metadata provider to Cornerstone's own unit function (the one its Length, Bidirectional and ROI tools
// call): mm from Pixel Spacing, "mm Proj" — which the panel reads "mm (Imager Pixel Spacing)" — from
// Imager Pixel Spacing alone (a mammogram), "px" where the image has no spacing at all.
import { readFileSync } from 'node:fs';
import { utilities as toolUtilities } from '@cornerstonejs/tools';
import { describe, expect, it } from 'vitest';
import { sampleFiles, samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { pixelInfoOf } from '../../core/dicom/pixels.ts';
import { displayMeta } from '../pipeline/display.ts';
import { metadataModule, type OpenedInstance } from './images.ts';
import { describeStats } from './measurements.ts';

function opened(file: string): OpenedInstance {
  const ds = parseDicom(new Uint8Array(readFileSync(file))).dataset;
  return {
    ref: 'x',
    verdict: undefined as never,
    meta: displayMeta(ds, pixelInfoOf(ds)),
    frames: [],
    header: [],
  };
}

/** The units Cornerstone's tools give a length on this image (as the stack viewport hands it over). */
function unitsOf(inst: OpenedInstance) {
  const plane = metadataModule('imagePlaneModule', inst, 1) as {
    usingDefaultValues: boolean;
    rowPixelSpacing: number;
    columnPixelSpacing: number;
  };
  const calibration = metadataModule('calibratedPixelSpacing', inst, 1) as
    { type: string } | undefined;
  // StackViewport.calibrateIfNecessary: spacing is real unless the provider marked it a placeholder.
  const image = {
    hasPixelSpacing: !plane.usingDefaultValues && plane.rowPixelSpacing > 0,
    spacing: [plane.columnPixelSpacing, plane.rowPixelSpacing, 1],
    calibration,
  };
  return toolUtilities.getCalibratedLengthUnitsAndScale(image as never, []);
}

describe('distances and their units', () => {
  it('Pixel Spacing: mm', () => {
    const inst = opened(sampleFiles('series/ct_chest_LIDC-IDRI-0314')[0]!);
    expect(inst.meta.spacingSource).toBe('pixel');
    const u = unitsOf(inst);
    expect([u.unit, u.areaUnit]).toEqual(['mm', 'mm²']);
    expect(describeStats('length', { length: 10, unit: u.unit })).toBe('10.00 mm');
  });

  it('Imager Pixel Spacing alone: mm, labelled as Imager Pixel Spacing', () => {
    // A GE mammogram: Imager Pixel Spacing, no Pixel Spacing.
    const file = samplePath('large/GH133.dcm');
    const ds = parseDicom(new Uint8Array(readFileSync(file))).dataset;
    expect(ds.text(T.PixelSpacing)).toBeUndefined();
    const imager = ds.text(T.ImagerPixelSpacing)!.split('\\').map(Number);
    const inst = opened(file);
    expect(inst.meta.spacingSource).toBe('imager');
    expect(inst.meta.pixelSpacing).toEqual(imager);
    const u = unitsOf(inst);
    expect(u.unit).toBe('mm Proj');
    expect(u.scale).toBeCloseTo(1 / imager[1]!, 9); // pixels per mm along a row
    expect(describeStats('length', { length: 25, unit: u.unit })).toBe(
      '25.00 mm (Imager Pixel Spacing)',
    );
    expect(
      describeStats('rectangle', {
        mean: 1,
        stdDev: 0,
        min: 1,
        max: 1,
        area: 4,
        areaUnit: u.areaUnit,
      }),
    ).toContain('area 4.00 mm² (Imager Pixel Spacing)');
  });

  it('no spacing: px, never mm', () => {
    const inst = opened(samplePath('small/mlut_18.dcm'));
    expect(inst.meta.pixelSpacing).toBeUndefined();
    const u = unitsOf(inst);
    expect([u.unit, u.areaUnit]).toEqual(['px', 'px²']);
    expect(describeStats('length', { length: 40, unit: u.unit })).toBe('40.00 px');
  });
});
