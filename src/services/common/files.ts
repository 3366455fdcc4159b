/** Files written atomically (temporary sibling, fsync, rename): a crash never leaves half a file. */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ZtvError } from '../../core/errors.ts';

/**
 * Writes a file atomically: a temporary sibling, then a rename, so a failure never leaves a partial
 * output. `mode` 0o600 for secrets.
 */
export function writeOutput(path: string, data: Uint8Array | string, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new ZtvError('bad-input', `cannot write ${path}: ${(e as Error).message}`);
  }
}
