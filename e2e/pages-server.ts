/** Builds the e2e test pages with Vite (production mode, as the viewer ships) and serves them. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, preview, type Plugin, type PreviewServer } from 'vite';
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
    plugins: [workerPolicy()],
  });
  return {
    base: server.resolvedUrls!.local[0]!.replace(/\/$/, ''),
    async close() {
      await server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}

/**
 * Scripts are served with the content security policy the hospital serves the viewer with
 * (src/services/consumer/main.ts) as far as workers are concerned: a worker runs under the policy of
 * its own script's response, so the pages' workers — the real decode worker among them — may connect
 * only to this origin, as in the viewer. (A policy on a page script's response binds nothing; the
 * pages themselves, which talk to test services elsewhere, are left without one.)
 */
function workerPolicy(): Plugin {
  const policy = [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self' blob:",
    "connect-src 'self'",
  ].join('; ');
  return {
    name: 'e2e-worker-policy',
    configurePreviewServer(server) {
      server.middlewares.use((req, res, next) => {
        if (req.url?.split('?')[0]?.endsWith('.js'))
          res.setHeader('content-security-policy', policy);
        next();
      });
    },
  };
}
