/**
 * The protection commands: dev-keys, protect (producer), trace (cloud), verify, open (viewer side),
 * inspect. Outputs are written atomically and only on success; keys never reach stdout or stderr.
 * protect, verify and open also take a folder: every DICOM Part 10 file under it, recursively, the
 * output tree (and the image keys' tree) mirroring the input's, one line per failure and a summary.
 * Modules are loaded by the command that needs them, so that a call starts fast.
 */
import { join, relative, resolve } from 'node:path';
import { EXIT, parse, readInput, requireString, UsageError, writeOutput } from '../common.ts';
import { writeOutputs } from '../../services/common/files.ts';
import { collectDicom, isDirectory } from '../files.ts';
import { ZtvError } from '../../core/errors.ts';
import type { CipherBackend } from '../../core/protect/cipher.ts';
import type { Verdict } from '../../core/protect/verdict.ts';

const keystore = () => import('../keystore.ts');
const imageKeys = () => import('../imagekey.ts');

const backendOf = (v: string | boolean | undefined): CipherBackend | undefined => {
  if (v === undefined) return undefined;
  if (v === 'webcrypto' || v === 'js') return v;
  throw new UsageError('--cipher must be webcrypto or js');
};

const exitFor = (v: Verdict): number =>
  v.status === 'verified' ? EXIT.ok : v.status === 'tampered' ? EXIT.tampered : EXIT.unverifiable;

/** Where an image key of a folder run lives: the key folder, mirroring the image's relative path. */
const keyFileIn = (dir: string, rel: string): string => join(dir, `${rel}.key.json`);

interface TreeItem {
  readonly file: string;
  /** The path relative to the folder given. */
  readonly rel: string;
}

/** The files of a folder argument, or undefined when it names a file. */
function treeOf(input: string): TreeItem[] | undefined {
  if (!isDirectory(input)) return undefined;
  const items = collectDicom([input]).map((file) => ({ file, rel: relative(input, file) }));
  if (items.length === 0) throw new ZtvError('bad-input', `${input} holds no DICOM Part 10 file`);
  return items;
}

/**
 * Runs `work` on every file of a folder, one after the other. A failure is one line on stderr and
 * the run goes on; a summary line ends it. The exit status is that of the worst outcome: 1 when any
 * image is tampered, else 2 when any cannot be verified, else 3 when any other failure, else 0.
 */
async function overTree(
  name: string,
  done: string,
  items: readonly TreeItem[],
  work: (item: TreeItem) => Promise<number>,
): Promise<number> {
  const exits: number[] = [];
  for (const item of items) {
    try {
      exits.push(await work(item));
    } catch (e) {
      const exit = (e as { exit?: unknown }).exit;
      console.error(`ztv ${name}: ${item.rel}: ${(e as Error).message ?? String(e)}`);
      exits.push(typeof exit === 'number' ? exit : EXIT.failure);
    }
  }
  const ok = exits.filter((x) => x === EXIT.ok).length;
  console.error(`ztv ${name}: ${ok} of ${items.length} files ${done}, ${items.length - ok} failed`);
  for (const worst of [EXIT.tampered, EXIT.unverifiable]) if (exits.includes(worst)) return worst;
  return ok === items.length ? EXIT.ok : EXIT.failure;
}

/** Rejects output paths that lie inside the input folder (a run would read its own output). */
function separateTrees(input: string, ...outputs: string[]): void {
  for (const o of outputs) {
    const r = relative(resolve(input), resolve(o));
    if (r === '' || (!r.startsWith('..') && !r.startsWith('/')))
      throw new UsageError(`${o} lies inside ${input}: give an output folder outside the input`);
  }
}

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
  const { writeDevKeys } = await keystore();
  const files = await writeDevKeys(positionals[0]!, alg, values.force === true);
  console.log(`wrote ${files.length} files to ${positionals[0]}: ${files.join(', ')}`);
  return EXIT.ok;
}

export async function protectCommand(args: string[]): Promise<number> {
  const usage =
    'ztv protect --keys DIR IN.dcm OUT.dcm --key-out IMAGEKEY.json [--aes 128|256] [--cipher webcrypto|js]\n' +
    '       ztv protect --keys DIR IN-FOLDER OUT-FOLDER --key-out KEY-FOLDER   (every DICOM file, recursively)';
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
  const [{ protect }, ks, { imageKeyOutput }] = await Promise.all([
    import('../../core/protect/protect.ts'),
    keystore(),
    imageKeys(),
  ]);
  const opts = {
    signer: await ks.signingKey(dir, 'producer'),
    pseudonymKey: ks.pseudonymKey(dir),
    keyBits,
    backend: backendOf(values.cipher),
  } as const;
  const one = async (inFile: string, outFile: string, keyFile: string): Promise<number> => {
    const p = await protect(readInput(inFile), { ...opts, what: inFile });
    // The image first, then its key, all or nothing: never a key without its image or the reverse.
    writeOutputs([
      { path: outFile, data: p.bytes },
      imageKeyOutput(keyFile, p.imageKey, p.sopInstanceUid),
    ]);
    const r = p.report;
    console.log(
      `protected ${inFile} → ${outFile}: ${r.samples} samples${r.decodedFrom ? ` (decoded from ${r.decodedFrom})` : ''}, ` +
        `${r.containerBytes}-byte container in ${r.L} bit plane(s) of ${r.K} samples, ${r.tiles} tiles of ${r.tileSide}; key in ${keyFile}`,
    );
    for (const w of r.warnings) console.error(`warning: ${inFile}: ${w}`);
    return EXIT.ok;
  };
  const tree = treeOf(input);
  if (!tree) return one(input, output, keyOut);
  separateTrees(input, output, keyOut);
  return overTree('protect', 'protected', tree, ({ file, rel }) =>
    one(file, join(output, rel), keyFileIn(keyOut, rel)),
  );
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
  const [{ traceProtected, traceIdFrom }, { signingKey }] = await Promise.all([
    import('../../core/protect/trace.ts'),
    keystore(),
  ]);
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
  const usage =
    'ztv verify --keys DIR [--image-key IMAGEKEY.json] FILE\n' +
    '       ztv verify --keys DIR [--image-key KEY-FOLDER] FOLDER   (JSON lines, one per file)';
  const { values, positionals } = parse(
    args,
    { keys: { type: 'string' }, 'image-key': { type: 'string' }, cipher: { type: 'string' } },
    usage,
  );
  const dir = requireString(values, 'keys', usage);
  if (positionals.length !== 1) throw new UsageError(`expected one FILE\nusage: ${usage}`);
  const input = positionals[0]!;
  const keyPath = values['image-key'];
  const [{ openProtected }, { resolverFor }, { readImageKey }] = await Promise.all([
    import('../../core/protect/open.ts'),
    keystore(),
    imageKeys(),
  ]);
  const resolver = await resolverFor(dir);
  const verdictOf = (file: string, key: string | undefined): Promise<Verdict> =>
    openProtected(readInput(file), {
      resolver,
      ...(key ? { imageKey: readImageKey(key) } : {}),
      backend: backendOf(values.cipher),
      what: file,
    }).then(
      (o) => o.verdict,
      (e: unknown) => {
        // A file that cannot be examined at all cannot be verified: exit 2, one line.
        if (e instanceof ZtvError && e.code !== 'wrong-key' && e.code !== 'bad-key')
          throw Object.assign(e, { exit: EXIT.unverifiable });
        throw e;
      },
    );
  const tree = treeOf(input);
  if (!tree) {
    const v = await verdictOf(input, typeof keyPath === 'string' ? keyPath : undefined);
    console.log(JSON.stringify(v, null, 2));
    return exitFor(v);
  }
  // A folder: one JSON line per file on stdout, failures and the summary on stderr.
  return overTree('verify', 'verified', tree, async ({ file, rel }) => {
    const v = await verdictOf(
      file,
      typeof keyPath === 'string' ? keyFileIn(keyPath, rel) : undefined,
    );
    console.log(JSON.stringify({ file: rel, status: v.status, summary: v.summary }));
    if (v.status !== 'verified') throw Object.assign(new Error(v.summary), { exit: exitFor(v) });
    return EXIT.ok;
  });
}

export async function openCommand(args: string[]): Promise<number> {
  const usage =
    'ztv open --keys DIR --image-key IMAGEKEY.json IN.dcm OUT.dcm [--allow-tampered]\n' +
    '       ztv open --keys DIR --image-key KEY-FOLDER IN-FOLDER OUT-FOLDER';
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
  const [{ openProtected }, { resolverFor }, { readImageKey }] = await Promise.all([
    import('../../core/protect/open.ts'),
    keystore(),
    imageKeys(),
  ]);
  const resolver = await resolverFor(dir);
  const one = async (inFile: string, outFile: string, key: string): Promise<number> => {
    const opened = await openProtected(readInput(inFile), {
      resolver,
      imageKey: readImageKey(key),
      backend: backendOf(values.cipher),
      what: inFile,
    });
    const v = opened.verdict;
    const refuse = (why: string) => {
      throw Object.assign(new ZtvError('integrity', why), { exit: exitFor(v) });
    };
    if (v.status !== 'verified' && values['allow-tampered'] !== true)
      refuse(`not written: ${v.summary} (--allow-tampered writes it anyway)`);
    if (!opened.restored) refuse(`not written: the image could not be restored: ${v.summary}`);
    writeOutput(outFile, opened.restored!.file());
    console.log(`opened ${inFile} → ${outFile}: ${v.summary}`);
    return exitFor(v);
  };
  const tree = treeOf(input);
  if (!tree) return one(input, output, keyPath);
  separateTrees(input, output);
  return overTree('open', 'opened', tree, ({ file, rel }) =>
    one(file, join(output, rel), keyFileIn(keyPath, rel)),
  );
}

export async function inspectCommand(args: string[]): Promise<number> {
  const usage = 'ztv inspect FILE';
  const { positionals } = parse(args, {}, usage);
  if (positionals.length !== 1) throw new UsageError(`expected one FILE\nusage: ${usage}`);
  const { inspectProtected } = await import('../../core/protect/inspect.ts');
  console.log(
    JSON.stringify(inspectProtected(readInput(positionals[0]!), positionals[0]), null, 2),
  );
  return EXIT.ok;
}
