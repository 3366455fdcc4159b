/**
 * `ztv`: the command line of hospitals, the cloud and auditors. Each command lives in its own module
 * under ./commands and is loaded on demand; this file dispatches and turns errors into one line.
 */
import { isZtvError } from '../core/errors.ts';
import { EXIT, UsageError } from './common.ts';

export type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: ztv <command> [options]\n\ncommands:\n${rows.join('\n')}\n\nztv <command> --help shows a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? EXIT.ok : EXIT.usage;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`ztv: unknown command "${name}"\n${usage()}`);
    return EXIT.usage;
  }
  try {
    const mod = await cmd.load();
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`ztv ${name}: ${e.message}`);
      return EXIT.usage;
    }
    if (isZtvError(e)) {
      console.error(`ztv ${name}: ${e.message}`);
      return EXIT.failure;
    }
    // An unexpected failure is still one line for the user; the stack only on request.
    console.error(`ztv ${name}: internal error: ${(e as Error).message ?? String(e)}`);
    if (process.env.ZTV_DEBUG) console.error(e);
    return EXIT.failure;
  }
}

const isMain = process.argv[1] && /ztv(\.js|\.ts)?$/.test(process.argv[1]);
if (isMain) process.exitCode = await main(process.argv.slice(2));
