/**
 * Where the real DICOM samples are, for `npm start`, the tests and the benchmarks: `$ZTV_SAMPLES`, or
 * `shared/dicom-samples` beside the repository (as a checkout and CI lay it). They are read from
 * there, never copied into the repository.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The samples folder (it holds MANIFEST.md), or an error that says where it was looked for. */
export function samplesDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.ZTV_SAMPLES || join(REPO_ROOT, '../shared/dicom-samples');
  if (existsSync(join(dir, 'MANIFEST.md'))) return dir;
  throw new Error(
    `the DICOM samples are not in ${dir}: set ZTV_SAMPLES to the dicom-samples folder`,
  );
}
