/** The samples' manifest.json: facts about every real DICOM file, written by whoever collected them. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SAMPLES } from './samples.ts';

export interface ManifestEntry {
  file: string;
  modality: string;
  /** Rows x Columns x Frames, or "no image". */
  dims: string;
  /** Bits Allocated / Bits Stored. */
  bits: string;
  signed: string;
  photometric: string;
  transfer_syntax: string;
  note: string;
}

export const MANIFEST: ManifestEntry[] = JSON.parse(
  readFileSync(join(SAMPLES, 'manifest.json'), 'utf8'),
) as ManifestEntry[];

export const manifestEntry = (rel: string): ManifestEntry => {
  const e = MANIFEST.find((m) => m.file === rel);
  if (!e) throw new Error(`${rel} is not in the samples manifest`);
  return e;
};
