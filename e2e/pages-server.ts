/** Builds the e2e test pages with Vite (production mode, as the viewer ships) and serves them. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, preview, type PreviewServer } from 'vite';
import { viewerPlugins } from '../scripts/vite-plugins.ts';
import { REPO_ROOT } from '../test/samples.ts';

export interface ServedPages {
  readonly base: string;
  close(): Promise<void>;
}

export async function servePages(...pages: string[]): Promise<ServedPages> {
  const outDir = mkdtempSync(join(tmpdir(), 'ztv-e2e-pages-'));
  await build({
    root: REPO_ROOT,
    configFile: false,
    logLevel: 'silent',
    plugins: viewerPlugins(),
    build: {
      outDir,
      emptyOutDir: true,
      chunkSizeWarningLimit: 10_000,
      rollupOptions: { input: pages.map((p) => join(REPO_ROOT, 'e2e/pages', p)) },
    },
    worker: { format: 'es', plugins: viewerPlugins },
  });
  const server: PreviewServer = await preview({
    root: REPO_ROOT,
    configFile: false,
    logLevel: 'silent',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
  });
  return {
    base: server.resolvedUrls!.local[0]!.replace(/\/$/, ''),
    async close() {
      await server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}
