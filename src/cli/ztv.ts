/**
 * `ztv`: the command line of hospitals, the cloud and auditors. Each command lives in its own module
 * under ./commands and is loaded on demand; this file dispatches and turns errors into one line.
 */
import { isZtvError } from '../core/errors.ts';
import { EXIT, HelpRequested, UsageError } from './common.ts';
import type * as CodecModule from './commands/codec.ts';

type CodecCommands = typeof CodecModule;

export type Command = (args: string[]) => Promise<number>;

const codec = (name: keyof CodecCommands) => async () => ({
  run: (await import('./commands/codec.ts'))[name],
});

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  'dev-keys': {
    summary: 'write a development key set (authority, producer, cloud)',
    load: codec('devKeys'),
  },
  protect: { summary: 'protect a DICOM image (producer hospital)', load: codec('protectCommand') },
  trace: {
    summary: 'write a signed trace into a protected image (cloud, no key)',
    load: codec('traceCommand'),
  },
  verify: {
    summary: 'verify a protected image; JSON verdict, exit 0/1/2',
    load: codec('verifyCommand'),
  },
  open: { summary: 'restore the original of a protected image', load: codec('openCommand') },
  inspect: {
    summary: "print a protected image's container in clear",
    load: codec('inspectCommand'),
  },
  policy: {
    summary:
      'policy check FILE…: validate and compile; policy explain FILE… --request R.json: decide',
    load: async () => ({ run: (await import('./commands/policy.ts')).policyCommand }),
  },
  outsource: {
    summary:
      'send DICOM files or folders to the producer hospital (protect and store at the cloud)',
    load: async () => ({ run: (await import('./commands/outsource.ts')).outsourceCommand }),
  },
  'trace-leak': {
    summary: 'who obtained a leaked image: verify its trace, resolve it in the producer log',
    load: async () => ({ run: (await import('./commands/trace-leak.ts')).traceLeakCommand }),
  },
  audit: {
    summary: 'audit verify: check audit chains and checkpoints; audit export: PS3.15 XML or CSV',
    load: async () => ({ run: (await import('./commands/audit.ts')).auditCommand }),
  },
  backup: {
    summary:
      "backup --data DIR --party P OUT: a party's database, files and keys (producer: encrypted)",
    load: async () => ({ run: (await import('./commands/backup.ts')).backupCommand }),
  },
  restore: {
    summary: 'restore --data DIR --party P IN: put a stopped party back from its backup',
    load: async () => ({ run: (await import('./commands/backup.ts')).restoreCommand }),
  },
  pki: {
    summary: 'pki init DIR: a demo PKI (CA, hospitals, cloud, CRLs, trust group); pki show DIR',
    load: async () => ({ run: (await import('./commands/pki.ts')).pkiCommand }),
  },
};

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
    if (e instanceof HelpRequested) {
      console.log(e.message);
      return EXIT.ok;
    }
    if (e instanceof UsageError) {
      console.error(`ztv ${name}: ${e.message}`);
      return EXIT.usage;
    }
    if (isZtvError(e)) {
      console.error(`ztv ${name}: ${e.message}`);
      const exit = (e as { exit?: number }).exit;
      return typeof exit === 'number' ? exit : EXIT.failure;
    }
    // An unexpected failure is still one line for the user; the stack only on request.
    console.error(`ztv ${name}: internal error: ${(e as Error).message ?? String(e)}`);
    if (process.env.ZTV_DEBUG) console.error(e);
    return EXIT.failure;
  }
}

const isMain = process.argv[1] && /ztv(\.js|\.ts)?$/.test(process.argv[1]);
if (isMain) {
  // `ztv … | head`: the reader went away; that is not an error of ours.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await main(process.argv.slice(2));
}
