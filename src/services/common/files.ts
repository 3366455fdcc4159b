/** Files written atomically (temporary sibling, fsync, rename): a crash never leaves half a file. */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ZtvError } from '../../core/errors.ts';

/** One file to write: its path, its content and its mode (0o600 for secrets). */
export interface Output {
  readonly path: string;
  readonly data: Uint8Array | string;
  readonly mode?: number;
}

/** The nearest existing ancestor of `dir` that is not a directory, if any (why mkdir fails). */
function fileInTheWay(dir: string): string | undefined {
  for (let p = dir; ; p = dirname(p)) {
    if (existsSync(p)) return statSync(p).isDirectory() ? undefined : p;
    if (dirname(p) === p) return undefined;
  }
}

/**
 * A file-system error in words, without the errno jargon ("EEXIST: file already exists, mkdir …").
 * `path` is the file being written: a file in the way of its directory is named.
 */
export function fsReason(e: unknown, path?: string): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const blocker = path ? fileInTheWay(dirname(path)) : undefined;
  switch (code) {
    case 'EEXIST':
    case 'ENOTDIR':
      return blocker
        ? `${blocker} is a file, not a directory`
        : 'a part of the path is not a directory';
    case 'EISDIR':
      return path ? `${path} is a directory` : 'the path is a directory';
    case 'ENOENT':
      return 'a directory on the way does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'ENAMETOOLONG':
      return 'the name is too long';
    default:
      return (e as Error | undefined)?.message ?? String(e);
  }
}

/** Creates `dir` (and its parents); a failure is one clear ZtvError, not an errno. */
export function ensureDir(dir: string, mode?: number): void {
  try {
    mkdirSync(dir, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  } catch (e) {
    throw new ZtvError(
      'bad-input',
      `cannot create the directory ${dir}: ${fsReason(e, join(dir, 'file'))}`,
    );
  }
}

function stage(o: Output): string {
  const dir = dirname(o.path);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new ZtvError('bad-input', `cannot write ${o.path}: ${fsReason(e, o.path)}`);
  }
  if (existsSync(o.path) && statSync(o.path).isDirectory())
    throw new ZtvError('bad-input', `cannot write ${o.path}: it is a directory`);
  const tmp = join(dir, `.${basename(o.path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = openSync(tmp, 'w', o.mode ?? 0o644);
    try {
      writeSync(fd, typeof o.data === 'string' ? Buffer.from(o.data) : o.data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new ZtvError('bad-input', `cannot write ${o.path}: ${fsReason(e, o.path)}`);
  }
  return tmp;
}

/**
 * Writes several files all or nothing, in order: each goes to a temporary sibling first; only once
 * every one is staged are they renamed into place, in the order given; should a rename still fail,
 * the files already put in place by this call are removed again. So an output never appears without
 * the others (a protected image without its key, or a key without its image).
 */
export function writeOutputs(outputs: readonly Output[]): void {
  const paths = outputs.map((o) => resolve(o.path));
  if (new Set(paths).size !== paths.length)
    throw new ZtvError('bad-input', 'the same file is named for two outputs');
  const staged: string[] = [];
  try {
    for (const o of outputs) staged.push(stage(o));
  } catch (e) {
    for (const t of staged) rmSync(t, { force: true });
    throw e;
  }
  const placed: string[] = [];
  for (const [i, o] of outputs.entries()) {
    try {
      renameSync(staged[i]!, o.path);
      placed.push(o.path);
    } catch (e) {
      for (const t of staged.slice(i)) rmSync(t, { force: true });
      for (const p of placed) rmSync(p, { force: true });
      throw new ZtvError('bad-input', `cannot write ${o.path}: ${fsReason(e, o.path)}`);
    }
  }
}

/**
 * Writes a file atomically: a temporary sibling, then a rename, so a failure never leaves a partial
 * output. `mode` 0o600 for secrets.
 */
export function writeOutput(path: string, data: Uint8Array | string, mode = 0o644): void {
  writeOutputs([{ path, data, mode }]);
}
