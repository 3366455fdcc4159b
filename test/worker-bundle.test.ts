// What ships in the clinician's decode worker: the production build (vite.config.ts) of the viewer,
// with the code each module contributes to the worker's chunks read back from the bundler. The
// worker opens tickets and protected images; the producer's and the cloud's code — protecting,
// tracing, issuing tickets — and the build-time warm-up generator must not be in it.
import { join, relative } from 'node:path';
import { build, type Plugin } from 'vite';
import { describe, expect, it } from 'vitest';
import { viewerPlugins } from '../scripts/vite-plugins.ts';
import { REPO_ROOT } from './samples.ts';

/** Exports each module of the worker bundle renders, by path from the repository root. */
async function workerExports(): Promise<Map<string, Set<string>>> {
  const rendered = new Map<string, Set<string>>();
  const capture: Plugin = {
    name: 'capture-worker-modules',
    generateBundle(_options, bundle) {
      for (const chunk of Object.values(bundle))
        if (chunk.type === 'chunk')
          for (const [id, m] of Object.entries(chunk.modules)) {
            if (m.renderedLength === 0) continue;
            const key = relative(REPO_ROOT, id.replace(/\?.*$/, ''));
            const names = rendered.get(key) ?? new Set<string>();
            for (const e of m.renderedExports) names.add(e);
            rendered.set(key, names);
          }
    },
  };
  await build({
    configFile: join(REPO_ROOT, 'vite.config.ts'),
    root: REPO_ROOT,
    logLevel: 'silent',
    build: { write: false, sourcemap: false },
    worker: { plugins: () => [...viewerPlugins(), capture] },
  });
  return rendered;
}

describe('the decode worker bundle', () => {
  it('holds the consumer side of tickets and images, and no producer or cloud code', async () => {
    const rendered = await workerExports();
    const exportsOf = (path: string) => [...(rendered.get(path) ?? [])];
    // The check sees the worker: what it runs is there.
    expect(exportsOf('src/viewer/pipeline/job.ts')).toContain('DecodeJob');
    expect(exportsOf('src/core/ticket/ticket.ts')).toContain('openKeysPart');
    expect(exportsOf('src/core/protect/open.ts')).toContain('openProtected');
    expect(exportsOf('src/viewer/pipeline/warmup.ts')).toContain('openWarmUp');
    // What it must not run.
    expect(exportsOf('src/core/protect/protect.ts')).not.toContain('protect');
    expect(exportsOf('src/core/protect/trace.ts')).not.toContain('traceProtected');
    expect(exportsOf('src/core/ticket/ticket.ts')).not.toContain('issueTicket');
    expect(exportsOf('src/core/ticket/ticket.ts')).not.toContain('openCloudPart');
    expect([...rendered.keys()].filter((p) => p.startsWith('scripts/'))).toEqual([]);
  });
});
