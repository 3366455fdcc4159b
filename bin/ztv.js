#!/usr/bin/env node
// Entry point of the `ztv` command: runs the CLI compiled by esbuild (bin/cli-bundle.js), rebuilt
// when a source changed. ZTV_CLI_TSX=1 runs the TypeScript sources through tsx instead.
if (process.env.ZTV_CLI_TSX === '1') {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/ztv.ts');
} else {
  const { pathToFileURL } = await import('node:url');
  const { cliBundle } = await import('./cli-bundle.js');
  await import(pathToFileURL(await cliBundle()).href);
}
