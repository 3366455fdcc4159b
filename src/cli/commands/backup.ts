/**
 * `ztv backup` and `ztv restore`: one party's database, files and keys, consistent while the party
 * runs (`src/services/storage/backup.ts`); a producer backup is always encrypted under the operator's
 * passphrase (a file, or $ZTV_BACKUP_PASSPHRASE — never the command line). Restore puts a stopped
 * party back; the audit witness then reports a chain set back to the backup's head as a rollback
 * (docs/services.md, "Backup and restore", says what the operator does then).
 */
import { join } from 'node:path';
import { ZtvError } from '../../core/errors.ts';
import { federationConfig, PARTY_NAMES, partyDir } from '../../services/common/config.ts';
import { backupParty, restoreParty, type PartyLocation } from '../../services/storage/backup.ts';
import { EXIT, parse, readInput, requireString, UsageError, writeOutput } from '../common.ts';

const COMMON =
  '--data DIR --party authority|producer|cloud|consumer [--pki DIR] [--passphrase-file F]';
const BACKUP_USAGE = `ztv backup ${COMMON} OUT\n  the passphrase may also come from $ZTV_BACKUP_PASSPHRASE; PostgreSQL from $DATABASE_URL`;
const RESTORE_USAGE = `ztv restore ${COMMON} [--force] IN\n  the party must be stopped; --force replaces its data`;

const OPTIONS = {
  data: { type: 'string' },
  party: { type: 'string' },
  pki: { type: 'string' },
  'passphrase-file': { type: 'string' },
} as const;

type Values = Record<string, string | boolean | undefined>;

function location(values: Values, usage: string): PartyLocation {
  const data = requireString(values, 'data', usage);
  const party = requireString(values, 'party', usage);
  if (!(PARTY_NAMES as readonly string[]).includes(party))
    throw new UsageError(`--party must be one of ${PARTY_NAMES.join(', ')}\nusage: ${usage}`);
  const c = federationConfig({ ...process.env, ZTV_DATA: data });
  const pkiDir = typeof values.pki === 'string' ? values.pki : c.pkiDir;
  return {
    party,
    dir: partyDir(c, party as (typeof PARTY_NAMES)[number]),
    pkiDir,
    ...(c.databaseUrl
      ? { postgres: { url: c.databaseUrl, schema: `${c.dbSchemaPrefix}_${party}` } }
      : {}),
  };
}

function passphrase(values: Values): string | undefined {
  if (typeof values['passphrase-file'] === 'string')
    return new TextDecoder()
      .decode(readInput(values['passphrase-file'], 'passphrase file'))
      .replace(/\r?\n$/, '');
  return process.env.ZTV_BACKUP_PASSPHRASE || undefined;
}

export async function backupCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, BACKUP_USAGE);
  if (positionals.length !== 1)
    throw new UsageError(`name one output file\nusage: ${BACKUP_USAGE}`);
  const loc = location(values, BACKUP_USAGE);
  const secret = passphrase(values);
  const { bytes, manifest } = await backupParty(loc, secret);
  writeOutput(positionals[0]!, bytes, 0o600);
  console.log(
    `${manifest.party}: ${manifest.database} database and ${manifest.files} file(s) backed up to ${positionals[0]} (${(bytes.length / 1024 / 1024).toFixed(1)} MB${secret ? ', encrypted' : ''})`,
  );
  return EXIT.ok;
}

export async function restoreCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...OPTIONS, force: { type: 'boolean' } },
    RESTORE_USAGE,
  );
  if (positionals.length !== 1)
    throw new UsageError(`name one backup file\nusage: ${RESTORE_USAGE}`);
  const loc = location(values, RESTORE_USAGE);
  const bytes = readInput(positionals[0]!, 'backup');
  if (bytes.length === 0) throw new ZtvError('bad-input', `${positionals[0]} is empty`);
  const m = await restoreParty(loc, bytes, passphrase(values), values.force === true);
  console.log(
    `${m.party} restored from the backup of ${m.createdAt} into ${loc.postgres ? `schema ${loc.postgres.schema}` : join(loc.dir)}; start it, then check its audit chain (ztv audit verify)`,
  );
  return EXIT.ok;
}
