/** The shared real DICOM samples (src/cli/samples.ts says where) for tests and benchmarks. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, samplesDir } from '../src/cli/samples.ts';

export const SAMPLES = samplesDir();
export { REPO_ROOT };

/** Absolute paths of the .dcm files in a samples sub-folder, sorted by name. */
export function sampleFiles(sub: string): string[] {
  const dir = join(SAMPLES, sub);
  return readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile() && f.endsWith('.dcm'))
    .sort()
    .map((f) => join(dir, f));
}

export const samplePath = (rel: string): string => join(SAMPLES, rel);
