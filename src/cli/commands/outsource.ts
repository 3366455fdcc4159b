/**
 * `ztv outsource`: a hospital operator sends DICOM files (or whole folders, recursively) to the
 * producer hospital's STOW-RS endpoint, which protects each instance and stores it at the cloud.
 * Re-sending is idempotent. The integration token comes from a file, the environment or the
 * federation's data directory — never from the command line, where other users could read it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stowInstances } from '../../core/client/stow.ts';
import { ZtvError } from '../../core/errors.ts';
import { federationConfig, loadSecrets } from '../../services/common/config.ts';
import { EXIT, parse, readInput, requireString, UsageError } from '../common.ts';
import { collectDicom } from '../files.ts';

const USAGE =
  'ztv outsource --producer URL [--token-file FILE | --data DIR] [--batch N] FILES|DIRS…\n' +
  '  the token may also come from $ZTV_STOW_TOKEN; --data reads DIR/secrets.json (npm start writes it)';

/**
 * Outsources DICOM files through the producer's STOW-RS endpoint, `batch` files a request;
 * idempotent (the producer answers a file it stored before from its records).
 */
export async function outsource(
  producerUrl: string,
  token: string,
  files: readonly string[],
  onProgress?: (done: number, total: number) => void,
  batch = 10,
): Promise<{ stored: number; already: number; failed: string[] }> {
  let stored = 0;
  let already = 0;
  const failed: string[] = [];
  for (let i = 0; i < files.length; i += batch) {
    const group = files.slice(i, i + batch);
    const r = await stowInstances(
      producerUrl,
      token,
      group.map((name) => ({ name, bytes: new Uint8Array(readFileSync(name)) })),
    );
    stored += r.stored;
    already += r.already;
    failed.push(...r.failed);
    onProgress?.(Math.min(i + batch, files.length), files.length);
  }
  return { stored, already, failed };
}

/** `330 new, 0 already stored` — what a run changed, not only what the cloud holds. */
export const storedSummary = (r: { stored: number; already: number }): string =>
  `${r.stored - r.already} new, ${r.already} already stored`;

/** A terminal progress line: instances, MB/s and time left, from the files' sizes. */
export function progressLine(
  files: readonly string[],
  started: number,
): (done: number, total: number) => string {
  const sizes = files.map((f) => statSync(f).size);
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  return (done, total) => {
    const bytes = sizes.slice(0, done).reduce((a, b) => a + b, 0);
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = bytes / seconds;
    const left = rate > 0 ? (totalBytes - bytes) / rate : 0;
    return `outsourcing ${done}/${total} instances, ${(rate / 1e6).toFixed(1)} MB/s, ${done < total ? `${Math.ceil(left)} s left` : 'done'}`;
  };
}

/** The .dcm files of a directory (non-recursive), or the file itself. */
export function dicomFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => f.endsWith('.dcm'))
    .sort()
    .map((f) => join(path, f));
}

function tokenFrom(values: Record<string, string | boolean | undefined>): string {
  if (typeof values['token-file'] === 'string')
    return new TextDecoder().decode(readInput(values['token-file'], 'token file')).trim();
  if (process.env.ZTV_STOW_TOKEN) return process.env.ZTV_STOW_TOKEN.trim();
  if (typeof values.data === 'string')
    return loadSecrets({ ...federationConfig(), dataDir: values.data }).stowToken;
  throw new UsageError(
    `give the integration token (--token-file, $ZTV_STOW_TOKEN or --data)\nusage: ${USAGE}`,
  );
}

export async function outsourceCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      producer: { type: 'string' },
      'token-file': { type: 'string' },
      data: { type: 'string' },
      batch: { type: 'string' },
    },
    USAGE,
  );
  const producer = requireString(values, 'producer', USAGE).replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+/.test(producer))
    throw new UsageError(`--producer must be an http(s) URL\nusage: ${USAGE}`);
  const batch = values.batch === undefined ? 10 : Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 100)
    throw new UsageError(`--batch must be a whole number from 1 to 100\nusage: ${USAGE}`);
  if (positionals.length === 0) throw new UsageError(`name files or folders\nusage: ${USAGE}`);
  const token = tokenFrom(values);
  const files = collectDicom(positionals);
  if (files.length === 0) throw new ZtvError('bad-input', 'no DICOM files found there');
  const started = Date.now();
  const line = process.stderr.isTTY ? progressLine(files, started) : undefined;
  const progress = line
    ? (done: number, total: number) => process.stderr.write(`\r\x1b[K${line(done, total)}`)
    : undefined;
  const r = await outsource(producer, token, files, progress, batch);
  if (progress) process.stderr.write('\n');
  for (const f of r.failed) console.error(`refused: ${f}`);
  // One line: what this run stored, what the cloud held already, what was refused.
  console.log(
    `${files.length} instance(s): ${storedSummary(r)} at the cloud${r.failed.length ? `, ${r.failed.length} refused` : ''} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return r.failed.length ? EXIT.failure : EXIT.ok;
}
