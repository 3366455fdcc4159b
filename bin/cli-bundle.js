// The `ztv` command line compiled by esbuild into node_modules/.cache/ztv-cli/<stamp>/, so that a call
// starts without compiling TypeScript (tsx took ~1 s per call). The stamp names the sources it was
// built from (newest modification time and number of .ts files under src/): editing a source makes
// the next call rebuild (about a second), and concurrent first calls each build into a private
// directory and keep whichever lands first. `npm run build:cli` builds it ahead of time.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
const CACHE = join(ROOT, 'node_modules/.cache/ztv-cli');
const KEEP = 3;
const EXTERNAL = [
  'better-sqlite3',
  'pg',
  'pg-native',
  '@cornerstonejs/*',
  '@cedar-policy/*',
  'xmllint-wasm',
  'playwright-core',
  'fsevents',
];

function stamp() {
  let newest = 0;
  let count = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
        count++;
        newest = Math.max(newest, statSync(p).mtimeMs);
      }
    }
  };
  walk(SRC);
  return `${Math.floor(newest)}-${count}`;
}

/** esbuild plugin: each module keeps its own import.meta.url (paths relative to its source). */
const keepImportMetaUrl = {
  name: 'keep-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(args.path, 'utf8');
      return {
        contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
        loader: 'ts',
      };
    });
  },
};

async function build(dir) {
  const esbuild = await import('esbuild');
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await esbuild.build({
    entryPoints: { ztv: join(SRC, 'cli/ztv.ts') },
    outdir: tmp,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true, // commands stay lazily loaded, each with its own packages
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Packages are bundled too (loading hundreds of package files cost more than the commands'
    // work); those with native addons or WebAssembly files beside their code stay external.
    external: EXTERNAL,
    sourcemap: true,
    // Bundled CommonJS packages require Node's built-ins.
    banner: {
      js: "import { createRequire as __ztvRequire } from 'node:module'; const require = __ztvRequire(import.meta.url);",
    },
    logLevel: 'error',
    plugins: [keepImportMetaUrl],
  });
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another call built the same sources first
  }
  // Older builds go, but the most recent few stay for calls still running from them.
  const builds = readdirSync(CACHE)
    .filter((d) => /^\d+-\d+$/.test(d))
    .map((d) => ({ d, t: statSync(join(CACHE, d)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { d } of builds.slice(KEEP)) rmSync(join(CACHE, d), { recursive: true, force: true });
}

/** The path of the compiled entry point, built first when the sources changed. */
export async function cliBundle() {
  const dir = join(CACHE, stamp());
  const entry = join(dir, 'ztv.mjs');
  if (!existsSync(entry)) {
    mkdirSync(CACHE, { recursive: true });
    await build(dir);
  }
  return entry;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(`ztv CLI bundle: ${await cliBundle()}`);
}
