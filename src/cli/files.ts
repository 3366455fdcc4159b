/** Input files of the commands: DICOM Part 10 files named, or found in folders walked recursively. */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ZtvError } from '../core/errors.ts';

/** True when the file has the DICOM Part 10 preamble and "DICM" prefix. */
export function isPart10File(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 128) === 4 && b.toString('latin1') === 'DICM';
  } finally {
    closeSync(fd);
  }
}

export const isDirectory = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

/**
 * Every DICOM Part 10 file under the given paths, folders walked recursively in name order (hidden
 * files and DICOMDIR left out); a file named explicitly must be Part 10.
 */
export function collectDicom(paths: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, explicit: boolean) => {
    if (!existsSync(p)) throw new ZtvError('bad-input', `${p} does not exist`);
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const f of readdirSync(p).sort())
        if (!f.startsWith('.') && f !== 'DICOMDIR') walk(join(p, f), false);
    } else if (st.isFile()) {
      if (isPart10File(p)) out.push(p);
      else if (explicit) throw new ZtvError('bad-input', `${p} is not a DICOM Part 10 file`);
    }
  };
  for (const p of paths) walk(p, true);
  return out;
}
