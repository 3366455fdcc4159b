/** Locates the shared real DICOM samples (never copied into the repository) for tests and benchmarks. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function locate(): string {
  const candidates = [
    process.env.ZTV_SAMPLES,
    resolve(repoRoot, '../shared/dicom-samples'),
    '/work/shared/dicom-samples',
  ].filter((p): p is string => !!p);
  for (const c of candidates) if (existsSync(join(c, 'MANIFEST.md'))) return c;
  throw new Error(
    `DICOM samples not found (looked in ${candidates.join(', ')}); set ZTV_SAMPLES to the dicom-samples folder`,
  );
}

export const SAMPLES = locate();
export const REPO_ROOT = repoRoot;

/** Absolute paths of the .dcm files in a samples sub-folder, sorted by name. */
export function sampleFiles(sub: string): string[] {
  const dir = join(SAMPLES, sub);
  return readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile() && f.endsWith('.dcm'))
    .sort()
    .map((f) => join(dir, f));
}

export const samplePath = (rel: string): string => join(SAMPLES, rel);
