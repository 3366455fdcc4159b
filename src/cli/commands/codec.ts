/**
 * The protection commands: dev-keys, protect (producer), trace (cloud), verify, open (viewer side),
 * inspect. Outputs are written atomically and only on success; keys never reach stdout or stderr.
 */
import { resolve } from 'node:path';
import { EXIT, parse, readInput, requireString, UsageError, writeOutput } from '../common.ts';
import { imageKeyOutput, readImageKey } from '../imagekey.ts';
import { pseudonymKey, resolverFor, signingKey, writeDevKeys } from '../keystore.ts';
import { ZtvError } from '../../core/errors.ts';
import { writeOutputs } from '../../services/common/files.ts';
import {
  inspectProtected,
  openProtected,
  protect,
  traceIdFrom,
  traceProtected,
  type Verdict,
} from '../../core/protect/index.ts';
import type { CipherBackend } from '../../core/protect/cipher.ts';

const backendOf = (v: string | boolean | undefined): CipherBackend | undefined => {
  if (v === undefined) return undefined;
  if (v === 'webcrypto' || v === 'js') return v;
  throw new UsageError('--cipher must be webcrypto or js');
};

const exitFor = (v: Verdict): number =>
  v.status === 'verified' ? EXIT.ok : v.status === 'tampered' ? EXIT.tampered : EXIT.unverifiable;

export async function devKeys(args: string[]): Promise<number> {
  const usage = 'ztv dev-keys DIR [--alg ecdsa-p256|ed25519] [--force]';
  const { values, positionals } = parse(
    args,
    { alg: { type: 'string' }, force: { type: 'boolean' } },
    usage,
  );
  if (positionals.length !== 1) throw new UsageError(`expected one directory\nusage: ${usage}`);
  const alg =
    values.alg === undefined || values.alg === 'ecdsa-p256'
      ? 'ECDSA-P256'
      : values.alg === 'ed25519'
        ? 'Ed25519'
        : undefined;
  if (!alg) throw new UsageError(`--alg must be ecdsa-p256 or ed25519\nusage: ${usage}`);
  const files = await writeDevKeys(positionals[0]!, alg, values.force === true);
  console.log(`wrote ${files.length} files to ${positionals[0]}: ${files.join(', ')}`);
  return EXIT.ok;
}

export async function protectCommand(args: string[]): Promise<number> {
  const usage =
    'ztv protect --keys DIR IN.dcm OUT.dcm --key-out IMAGEKEY.json [--aes 128|256] [--cipher webcrypto|js]';
  const { values, positionals } = parse(
    args,
    {
      keys: { type: 'string' },
      'key-out': { type: 'string' },
      aes: { type: 'string' },
      cipher: { type: 'string' },
    },
    usage,
  );
  const dir = requireString(values, 'keys', usage);
  const keyOut = requireString(values, 'key-out', usage);
  if (positionals.length !== 2)
    throw new UsageError(`expected IN.dcm and OUT.dcm\nusage: ${usage}`);
  const [input, output] = positionals as [string, string];
  if (resolve(output) === resolve(keyOut))
    throw new UsageError(`OUT.dcm and --key-out must be different files\nusage: ${usage}`);
  const keyBits = values.aes === undefined ? 256 : Number(values.aes);
  if (keyBits !== 128 && keyBits !== 256) throw new UsageError('--aes must be 128 or 256');
  const p = await protect(readInput(input), {
    signer: await signingKey(dir, 'producer'),
    pseudonymKey: pseudonymKey(dir),
    keyBits,
    backend: backendOf(values.cipher),
    what: input,
  });
  // The image first, then its key, all or nothing: never a key without its image or the reverse.
  writeOutputs([
    { path: output, data: p.bytes },
    imageKeyOutput(keyOut, p.imageKey, p.sopInstanceUid),
  ]);
  const r = p.report;
  console.log(
    `protected ${input} → ${output}: ${r.samples} samples${r.decodedFrom ? ` (decoded from ${r.decodedFrom})` : ''}, ` +
      `${r.containerBytes}-byte container in ${r.L} bit plane(s) of ${r.K} samples, ${r.tiles} tiles of ${r.tileSide}; key in ${keyOut}`,
  );
  for (const w of r.warnings) console.error(`warning: ${w}`);
  return EXIT.ok;
}

export async function traceCommand(args: string[]): Promise<number> {
  const usage = 'ztv trace --keys DIR --trace ID IN.dcm OUT.dcm';
  const { values, positionals } = parse(
    args,
    { keys: { type: 'string' }, trace: { type: 'string' } },
    usage,
  );
  const dir = requireString(values, 'keys', usage);
  const id = requireString(values, 'trace', usage);
  if (positionals.length !== 2)
    throw new UsageError(`expected IN.dcm and OUT.dcm\nusage: ${usage}`);
  const [input, output] = positionals as [string, string];
  const traced = await traceProtected(readInput(input), {
    signer: await signingKey(dir, 'cloud'),
    traceId: traceIdFrom(id),
    what: input,
  });
  writeOutput(output, traced);
  console.log(`traced ${input} → ${output}`);
  return EXIT.ok;
}

export async function verifyCommand(args: string[]): Promise<number> {
  const usage = 'ztv verify --keys DIR [--image-key IMAGEKEY.json] FILE';
  const { values, positionals } = parse(
    args,
    { keys: { type: 'string' }, 'image-key': { type: 'string' }, cipher: { type: 'string' } },
    usage,
  );
  const dir = requireString(values, 'keys', usage);
  if (positionals.length !== 1) throw new UsageError(`expected one FILE\nusage: ${usage}`);
  const file = positionals[0]!;
  const bytes = readInput(file);
  const keyPath = values['image-key'];
  const opened = await openProtected(bytes, {
    resolver: await resolverFor(dir),
    ...(typeof keyPath === 'string' ? { imageKey: readImageKey(keyPath) } : {}),
    backend: backendOf(values.cipher),
    what: file,
  }).catch((e: unknown) => {
    // A file that cannot be examined at all cannot be verified: exit 2, one line.
    if (e instanceof ZtvError && e.code !== 'wrong-key' && e.code !== 'bad-key')
      throw Object.assign(e, { exit: EXIT.unverifiable });
    throw e;
  });
  console.log(JSON.stringify(opened.verdict, null, 2));
  return exitFor(opened.verdict);
}

export async function openCommand(args: string[]): Promise<number> {
  const usage = 'ztv open --keys DIR --image-key IMAGEKEY.json IN.dcm OUT.dcm [--allow-tampered]';
  const { values, positionals } = parse(
    args,
    {
      keys: { type: 'string' },
      'image-key': { type: 'string' },
      'allow-tampered': { type: 'boolean' },
      cipher: { type: 'string' },
    },
    usage,
  );
  const dir = requireString(values, 'keys', usage);
  const keyPath = requireString(values, 'image-key', usage);
  if (positionals.length !== 2)
    throw new UsageError(`expected IN.dcm and OUT.dcm\nusage: ${usage}`);
  const [input, output] = positionals as [string, string];
  const opened = await openProtected(readInput(input), {
    resolver: await resolverFor(dir),
    imageKey: readImageKey(keyPath),
    backend: backendOf(values.cipher),
    what: input,
  });
  const v = opened.verdict;
  if (v.status !== 'verified' && values['allow-tampered'] !== true) {
    console.error(`ztv open: not written: ${v.summary} (--allow-tampered writes it anyway)`);
    return exitFor(v);
  }
  if (!opened.restored) {
    console.error(`ztv open: not written: the image could not be restored: ${v.summary}`);
    return exitFor(v);
  }
  writeOutput(output, opened.restored.file());
  console.log(`opened ${input} → ${output}: ${v.summary}`);
  return exitFor(v);
}

export async function inspectCommand(args: string[]): Promise<number> {
  const usage = 'ztv inspect FILE';
  const { positionals } = parse(args, {}, usage);
  if (positionals.length !== 1) throw new UsageError(`expected one FILE\nusage: ${usage}`);
  console.log(
    JSON.stringify(inspectProtected(readInput(positionals[0]!), positionals[0]), null, 2),
  );
  return EXIT.ok;
}
