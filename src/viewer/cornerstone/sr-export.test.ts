// The instance the SR references, as dcmjs' naturalised dataset, from the restored header the viewer
// holds (the tag browser's rows), checked against real files read with our parser.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { samplePath, sampleFiles } from '../../../test/samples.ts';
import { headerRows } from '../pipeline/job.ts';
import { naturalInstance } from './sr-export.ts';

const read = (file: string) => parseDicom(new Uint8Array(readFileSync(file))).dataset;

describe('naturalInstance', () => {
  it('carries the UIDs, patient and study of a CT slice, numbers as numbers', () => {
    const file = sampleFiles('series/ct_chest_LIDC-IDRI-0314')[0]!;
    const ds = read(file);
    const n = naturalInstance(headerRows(ds));
    expect(n.SOPClassUID).toBe('1.2.840.10008.5.1.4.1.1.2');
    expect(n.SOPInstanceUID).toBe(ds.text(T.SOPInstanceUID));
    expect(n.StudyInstanceUID).toBe(ds.text(T.StudyInstanceUID));
    expect(n.SeriesInstanceUID).toBe(ds.text(T.SeriesInstanceUID));
    expect(n.PatientID).toBe(ds.text(T.PatientID));
    expect(n.Modality).toBe('CT');
    expect(n.InstanceNumber).toBe(ds.number(T.InstanceNumber));
    expect(typeof n.SeriesNumber).toBe('number');
    // Nothing from inside sequences, and no pixel data.
    expect(Object.keys(n).every((k) => /^[A-Z][A-Za-z]+$/.test(k))).toBe(true);
    expect(n).not.toHaveProperty('PixelData');
  });

  it('gives a multi-frame image its Number of Frames (the SR then names frames)', () => {
    const n = naturalInstance(headerRows(read(samplePath('small/emri_small.dcm'))));
    expect(n.NumberOfFrames).toBe(10);
  });
});
