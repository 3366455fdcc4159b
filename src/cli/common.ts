/** Helpers shared by the `ztv` commands: argument parsing, atomic file output, user-facing errors. */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ZtvError } from '../core/errors.ts';

/** Exit codes shared by every command. `verify` adds 1 = tampered, 2 = cannot verify. */
export const EXIT = { ok: 0, tampered: 1, unverifiable: 2, usage: 64, failure: 3 } as const;

export class UsageError extends Error {}

/** Thrown by `parse` when the user asked for a command's usage: printed on stdout, exit 0. */
export class HelpRequested extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses `args` strictly: unknown flags and missing values are usage errors, not crashes. */
export function parse<O extends Options>(
  args: string[],
  options: O,
  usage: string,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  if (args.includes('--help') || args.includes('-h')) throw new HelpRequested(`usage: ${usage}`);
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    return {
      values: r.values as Record<string, string | boolean | undefined>,
      positionals: r.positionals,
    };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${usage}`);
  }
}

export function requireString(
  values: Record<string, string | boolean | undefined>,
  name: string,
  usage: string,
): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '')
    throw new UsageError(`--${name} is required\nusage: ${usage}`);
  return v;
}

/** Reads a whole file, turning "no such file" and friends into one clear sentence. */
export function readInput(path: string, what = 'input file'): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ZtvError('bad-input', `${what} ${path} does not exist`);
    if (code === 'EISDIR') throw new ZtvError('bad-input', `${what} ${path} is a directory`);
    if (code === 'EACCES') throw new ZtvError('bad-input', `${what} ${path} is not readable`);
    throw new ZtvError('bad-input', `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

export { writeOutput } from '../services/common/files.ts';
