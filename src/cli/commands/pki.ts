/** `ztv pki …`: the demo federation's PKI on disk, and a look at what a directory holds. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from '../../core/bytes.ts';
import { ZtvError } from '../../core/errors.ts';
import { createDemoPki } from '../../core/pki/demo.ts';
import { fsReason } from '../../services/common/files.ts';
import { isPkiDir, loadPkiDir, writePkiDir } from '../../services/common/pki-dir.ts';
import { EXIT, HelpRequested, parse, UsageError } from '../common.ts';

const USAGE = `ztv pki init DIR [--force]
       ztv pki show DIR

  init   writes a complete demo PKI to DIR: ca.pem, producer.pem, consumer.pem, cloud.pem and their
         *.key.pem (mode 0600), the hospital CA certificates, CRLs and the signed trust-group.json;
         --force replaces a PKI already there
  show   prints, as JSON, the root, intermediates, organisation certificates, CRLs and trust group
         found in DIR`;

const isHelp = (a: string | undefined): boolean => a === '--help' || a === '-h' || a === 'help';

export async function pkiCommand(args: string[]): Promise<number> {
  const usage = USAGE;
  const [sub, ...rest] = args;
  if (isHelp(sub)) throw new HelpRequested(`usage: ${usage}`);
  if (sub === undefined) throw new UsageError(`expected a pki command\nusage: ${usage}`);
  if (sub === 'init') {
    const { values, positionals } = parse(rest, { force: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one directory\nusage: ${usage}`);
    const dir = positionals[0]!;
    if (isPkiDir(dir) && values.force !== true)
      throw new ZtvError(
        'bad-input',
        `${dir} already holds a PKI (${join(dir, 'ca.pem')}); use --force to replace it`,
      );
    if (existsSync(dir) && !statSync(dir).isDirectory())
      throw new ZtvError('bad-input', `${dir} exists and is not a directory`);
    const pki = await createDemoPki();
    let files: string[];
    try {
      files = await writePkiDir(dir, pki, randomBytes(32));
    } catch (e) {
      if (e instanceof ZtvError) throw e;
      throw new ZtvError(
        'bad-input',
        `cannot write a PKI to ${dir}: ${fsReason(e, join(dir, 'ca.pem'))}`,
      );
    }
    console.log(
      `wrote a demo PKI to ${dir}: ${files.length} files (ca.pem, organisation and hospital CA certificates, keys, CRLs, trust-group.json)`,
    );
    return EXIT.ok;
  }
  if (sub === 'show') {
    const { positionals } = parse(rest, {}, usage);
    if (positionals.length !== 1 || !existsSync(positionals[0]!))
      throw new UsageError(`expected a PKI directory\nusage: ${usage}`);
    const pki = await loadPkiDir(positionals[0]!);
    console.log(
      JSON.stringify(
        {
          root: pki.root.subject,
          intermediates: pki.intermediates.map((c) => c.subject),
          organisations: pki.organisations.map((c) => ({
            subject: c.subject,
            notAfter: c.notAfter.toISOString(),
          })),
          crls: pki.crls.map((c) => ({
            issuer: c.issuer,
            revoked: c.entries.length,
            nextUpdate: c.nextUpdate?.toISOString(),
          })),
          trustGroup: pki.trustGroup,
        },
        null,
        2,
      ),
    );
    return EXIT.ok;
  }
  throw new UsageError(`unknown pki command ${sub}\nusage: ${usage}`);
}
