/**
 * The viewer against plain Cornerstone3D, in headless Chromium on this machine, in the same run: a
 * real federation (four processes) serving the 150-slice CT series to the real viewer — ticket to
 * first verified image, to first render, to all 150 slices, worker throughput — and the same series
 * loaded unprotected through Cornerstone's standard dicom-image-loader (wadouri) from a local,
 * uncompressed HTTP server. Runs alternate between the two so that machine load hits both alike.
 * Run: `npm run bench -- viewer` (or `npx tsx bench/viewer.ts [runs]`); writes bench/reports/viewer.md.
 */
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, extname, join, normalize } from 'node:path';
import { build } from 'vite';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../e2e/browser.ts';
import {
  marks,
  openViewer,
  requestPatient,
  signInAndEnrol,
  submitRequest,
  waitForStudy,
} from '../e2e/viewer-app.ts';
import { startViewerFederation, type ViewerFederation } from '../e2e/viewer-federation.ts';
import { REPO_ROOT } from '../test/samples.ts';
import {
  cpuByPart,
  cpuSince,
  machine,
  machineBusyMs,
  median,
  widenToAllCores,
  writeReport,
} from './lib.ts';

// The viewer's workers, Cornerstone's and the services need the machine's cores.
widenToAllCores();

const RUNS = Number(process.argv[2] ?? 5);
/** The Cornerstone3D version installed, as the report names it. */
const CORNERSTONE = (
  JSON.parse(
    readFileSync(join(REPO_ROOT, 'node_modules/@cornerstonejs/core/package.json'), 'utf8'),
  ) as { version: string }
).version;
const MB = (b: number) => b / 1e6;

/** Builds the baseline page and serves it and the original DICOM files, uncompressed. */
async function plainServer(files: readonly string[]): Promise<{ base: string; close(): void }> {
  const outDir = mkdtempSync(join(tmpdir(), 'ztv-bench-plain-'));
  await build({
    root: REPO_ROOT,
    configFile: false,
    logLevel: 'error',
    build: {
      outDir,
      emptyOutDir: true,
      chunkSizeWarningLimit: 10_000,
      rollupOptions: { input: [join(REPO_ROOT, 'e2e/pages/plain.html')] },
    },
    worker: { format: 'es' },
  });
  const byName = new Map(files.map((f) => [basename(f), f]));
  const types: Record<string, string> = {
    '.html': 'text/html',
    '.js': 'text/javascript',
    '.wasm': 'application/wasm',
    '.css': 'text/css',
  };
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.startsWith('/dicom/')
      ? byName.get(path.slice(7))
      : join(outDir, normalize(path).replace(/^(\.\.[/\\])+/, ''));
    if (!file || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': path.startsWith('/dicom/')
        ? 'application/dicom'
        : (types[extname(file)] ?? 'application/octet-stream'),
      'content-length': statSync(file).size,
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    base: `http://127.0.0.1:${port}`,
    close() {
      server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}

interface PlainRun {
  firstRender: number;
  all: number;
  /** Core-milliseconds the whole machine was busy while the series loaded. */
  busy: number;
  /** The same, part by part (`cpuByPart`). */
  parts: Map<string, number>;
}

async function plainRun(
  browser: Browser,
  base: string,
  files: readonly string[],
): Promise<PlainRun> {
  const context = await browser.newContext({ viewport: { width: 600, height: 600 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await page.goto(`${base}/e2e/pages/plain.html`);
  await page.waitForFunction(() => typeof window.plainLoad === 'function');
  const urls = files.map((f) => `${base}/dicom/${basename(f)}`);
  const busy0 = machineBusyMs();
  const parts0 = cpuByPart();
  const r = await page.evaluate((u) => window.plainLoad(u), urls);
  const busy = machineBusyMs() - busy0;
  const parts = cpuSince(parts0, cpuByPart());
  await context.close();
  return { firstRender: r.firstRender, all: r.all, busy, parts };
}

/**
 * The window that gives the viewer's image viewport the plain page's 512x512 CSS pixels (the
 * viewer's study list, panels and toolbar around it): both then render the same number of pixels,
 * which in software WebGL is a large part of a render. Checked after each run.
 */
const LIKE_PLAIN = { width: 1072, height: 759 } as const;

interface ViewerRun {
  workers: number;
  keysOpened: number;
  redeemed: number;
  firstByte: number;
  firstVerified: number;
  firstRender: number;
  lastByte: number;
  all: number;
  bytes: number;
  workerMs: number;
  /** From the click on "Request access" (consultation included) to all slices. */
  fromRequest: number;
  /** Core-milliseconds the whole machine was busy from that click to all slices. */
  busy: number;
  /** The same, part by part (`cpuByPart`). */
  parts: Map<string, number>;
}

interface ViewerConfig {
  readonly label: string;
  readonly cores?: number;
  /** The browser window; the viewport is checked to be 512x512 when it is LIKE_PLAIN. */
  readonly window: { readonly width: number; readonly height: number };
}

async function viewerRun(
  browser: Browser,
  v: ViewerFederation,
  c: ViewerConfig,
): Promise<ViewerRun> {
  const vp = await openViewer(browser, v.url, {
    ...c.window,
    ...(c.cores ? { cores: c.cores } : {}),
  });
  const cdp = await vp.context.newCDPSession(vp.page);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await signInAndEnrol(vp.page, 'dr.bob');
  await requestPatient(vp.page, v.ctPatient);
  // A clinician takes a moment to declare the purpose: the workers' warm-up is over by then.
  await vp.page.waitForTimeout(1500);
  const clicked = await vp.page.evaluate(() => performance.now());
  const busy0 = machineBusyMs();
  const parts0 = cpuByPart();
  await submitRequest(vp.page, 'treatment');
  await waitForStudy(vp.page);
  const busy = machineBusyMs() - busy0;
  const parts = cpuSince(parts0, cpuByPart());
  await vp.page.waitForFunction(() => performance.getEntriesByName('ztv:first-render').length > 0);
  const m = await marks(vp.page);
  const box = await vp.page.locator('[data-testid=viewport]').boundingBox();
  await vp.context.close();
  if (
    c.window === LIKE_PLAIN &&
    (Math.round(box?.width ?? 0) !== 512 || Math.round(box?.height ?? 0) !== 512)
  )
    throw new Error(
      `the viewer's viewport is ${box?.width}x${box?.height}, not the plain page's 512x512: adjust LIKE_PLAIN to the layout`,
    );
  if (vp.errors.length) throw new Error(`the viewer reported errors: ${vp.errors.join('; ')}`);
  const t = (k: string) => {
    if (!m[k]) throw new Error(`no ztv:${k} mark`);
    return m[k].at - m.ticket!.at;
  };
  const done = m['all-opened']!.detail as { bytes: number; workerMs: number; workers: number };
  return {
    workers: done.workers,
    keysOpened: t('keys-opened'),
    redeemed: t('redeemed'),
    firstByte: t('first-byte'),
    firstVerified: t('first-verified'),
    firstRender: t('first-render'),
    lastByte: t('last-byte'),
    all: t('all-opened'),
    bytes: done.bytes,
    workerMs: done.workerMs,
    fromRequest: m['all-opened']!.at - clicked,
    busy,
    parts,
  };
}

const range = (xs: number[]) =>
  `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;

console.log('starting the federation and outsourcing the CT series…');
const load0 = loadavg()[0]!;
const v = await startViewerFederation();
const plain = await plainServer(v.ct);
const browser = await launchChromium();
const hc = cpus().length;
const configs: ViewerConfig[] = [
  { label: `default pool (hardwareConcurrency ${hc}), 512x512 viewport`, window: LIKE_PLAIN },
  {
    label: `one worker less (hardwareConcurrency reported as ${hc - 1}), 512x512 viewport`,
    cores: Math.max(1, hc - 1),
    window: LIKE_PLAIN,
  },
  {
    label: `default pool, 1400x900 window (viewport about 840x770)`,
    window: { width: 1400, height: 900 },
  },
];
const plainRuns: PlainRun[] = [];
const viewerRuns: ViewerRun[][] = configs.map(() => []);
try {
  // One unmeasured round of each, so that neither side pays the machine's first-use costs.
  await plainRun(browser, plain.base, v.ct);
  await viewerRun(browser, v, configs[0]!);
  for (let i = 0; i < RUNS; i++) {
    plainRuns.push(await plainRun(browser, plain.base, v.ct));
    for (const [k, c] of configs.entries()) viewerRuns[k]!.push(await viewerRun(browser, v, c));
    console.log(
      `run ${i + 1}/${RUNS}: plain ${plainRuns.at(-1)!.all.toFixed(0)} ms; viewer ${viewerRuns
        .map((r) => r.at(-1)!.all.toFixed(0))
        .join(' / ')} ms`,
    );
  }
} finally {
  await browser.close();
  plain.close();
  await v.close();
}
const load1 = loadavg()[0]!;

const plainFirst = plainRuns.map((r) => r.firstRender);
const plainAll = plainRuns.map((r) => r.all);
const seriesBytes = viewerRuns[0]![0]!.bytes;
const rows = viewerRuns.map((runs, k) => {
  const all = runs.map((r) => r.all);
  const perWorker = runs.map((r) => MB(r.bytes) / (r.workerMs / 1000));
  const pipeline = runs.map((r) => MB(r.bytes) / ((r.all - r.firstByte) / 1000));
  return {
    label: configs[k]!.label,
    workers: runs[0]!.workers,
    keysOpened: range(runs.map((r) => r.keysOpened)),
    redeemed: range(runs.map((r) => r.redeemed)),
    firstByte: range(runs.map((r) => r.firstByte)),
    firstVerified: range(runs.map((r) => r.firstVerified)),
    byteToVerified: range(runs.map((r) => r.firstVerified - r.firstByte)),
    firstRender: range(runs.map((r) => r.firstRender)),
    lastByte: range(runs.map((r) => r.lastByte)),
    all: range(all),
    fromRequest: range(runs.map((r) => r.fromRequest)),
    busy: (median(runs.map((r) => r.busy)) / 1000).toFixed(2),
    cores: median(runs.map((r) => r.busy / r.fromRequest)).toFixed(2),
    perWorker: median(perWorker).toFixed(1),
    pipeline: median(pipeline).toFixed(1),
    ratio: (median(all) / median(plainAll)).toFixed(2),
    firstRatio: (median(runs.map((r) => r.firstRender)) / median(plainFirst)).toFixed(2),
  };
});

/** The CPU work per part, plain and each viewer configuration side by side. */
function partsTable(): string {
  const all = [plainRuns, ...viewerRuns] as { parts: Map<string, number>; busy: number }[][];
  const names = [...new Set(all.flatMap((runs) => runs.flatMap((r) => [...r.parts.keys()])))];
  const med = (runs: { parts: Map<string, number> }[], name: string) =>
    median(runs.map((r) => r.parts.get(name) ?? 0));
  const shown = names
    .filter((n) => all.some((runs) => med(runs, n) >= 10))
    .sort((a, b) => med(viewerRuns[0]!, b) - med(viewerRuns[0]!, a));
  const rest = (runs: { parts: Map<string, number>; busy: number }[]) =>
    median(runs.map((r) => r.busy - [...r.parts.values()].reduce((x, y) => x + y, 0)));
  const head = `| part | plain Cornerstone | ${rows.map((r, k) => `viewer, ${r.workers} worker${r.workers > 1 ? 's' : ''}${configs[k]!.window === LIKE_PLAIN ? '' : ', large window'}`).join(' | ')} |`;
  const lines = shown.map(
    (n) => `| ${n} | ${all.map((runs) => med(runs, n).toFixed(0)).join(' | ')} |`,
  );
  return [
    head,
    `| --- | ${all.map(() => '---').join(' | ')} |`,
    ...lines,
    `| the rest | ${all.map((runs) => rest(runs).toFixed(0)).join(' | ')} |`,
  ].join('\n');
}

const report = `# Viewer: protected series against plain Cornerstone3D

The real CT series \`series/ct_chest_LIDC-IDRI-0314\` (150 slices, 512x512, 16-bit; ${MB(seriesBytes).toFixed(1)} MB as the
cloud serves it) opened in Debian's Chromium (headless, WebGL through SwiftShader), ${RUNS} measured runs of each
configuration, alternating, after one unmeasured round; medians with (min–max).

- **Protected** — the real viewer against a real federation on this machine (authority, producer, cloud and
  consumer as four processes): a clinician signs in, enrols the browser, requests the study for treatment;
  times run from the ticket in hand (\`ztv:ticket\`): the key part is opened in every decode worker while the
  cloud redeems the ticket (inserting and signing the trace of all 150 images), the instances stream in sealed
  session frames, each is verified up to the pinned root, decrypted, restored exactly and converted in the
  worker pool, and drawn by Cornerstone3D through the \`zt:\` loader.
- **Plain** — Cornerstone3D ${CORNERSTONE} with its standard dicom-image-loader (\`wadouri:\`, its default pool:
  max(1, hardwareConcurrency/2) workers), the original files from a local uncompressed HTTP server, one stack
  viewport: \`setStack\` → first render, then every slice loaded and cached. No authentication, no decryption,
  no verification.

Machine: ${machine()}; load average ${load0.toFixed(1)} before, ${load1.toFixed(1)} after (the machine is shared).

| | plain Cornerstone (512x512) | ${rows.map((r, k) => `viewer, ${r.workers} decode worker${r.workers > 1 ? 's' : ''}${configs[k]!.window === LIKE_PLAIN ? ', 512x512' : ', large window'}`).join(' | ')} |
| --- | --- | ${rows.map(() => '---').join(' | ')} |
| ticket → key part opened in every worker | — | ${rows.map((r) => r.keysOpened).join(' | ')} |
| ticket → redeemed (cloud inserts 150 traces) | — | ${rows.map((r) => r.redeemed).join(' | ')} |
| ticket → first byte of the first image | — | ${rows.map((r) => r.firstByte).join(' | ')} |
| ticket → first image verified | — | ${rows.map((r) => r.firstVerified).join(' | ')} |
| first byte → first image verified (transfer of one instance, worker) | — | ${rows.map((r) => r.byteToVerified).join(' | ')} |
| first render, ms (plain: from \`setStack\`; viewer: from the ticket) | ${range(plainFirst)} | ${rows.map((r) => r.firstRender).join(' | ')} |
| ticket → last byte | — | ${rows.map((r) => r.lastByte).join(' | ')} |
| all 150 slices, ms (plain: from \`setStack\`) | ${range(plainAll)} | ${rows.map((r) => r.all).join(' | ')} |
| "Request access" click → all 150 (consultation included) | — | ${rows.map((r) => r.fromRequest).join(' | ')} |
| CPU work of the whole machine during the load, core-seconds (plain: \`setStack\` → all; viewer: click → all) | ${(median(plainRuns.map((r) => r.busy)) / 1000).toFixed(2)} | ${rows.map((r) => r.busy).join(' | ')} |
| cores busy on average during the load (of ${hc}) | ${median(plainRuns.map((r) => r.busy / r.all)).toFixed(2)} | ${rows.map((r) => r.cores).join(' | ')} |
| worker throughput, MB/s per worker (served bytes / worker busy time) | — | ${rows.map((r) => r.perWorker).join(' | ')} |
| pipeline throughput, MB/s (first byte → all verified) | ${(MB(seriesBytes) / (median(plainAll) / 1000)).toFixed(1)} | ${rows.map((r) => r.pipeline).join(' | ')} |
| **protected / plain, all slices** | 1.00 | ${rows.map((r) => `**${r.ratio}**`).join(' | ')} |
| protected / plain, first render | 1.00 | ${rows.map((r) => r.firstRatio).join(' | ')} |

Where the CPU work went (core-milliseconds during the load, medians; per thread from \`/proc\`, in clock
ticks of 10 ms; "the rest" is the machine's total less the parts listed — the kernel and anything else
running — and can come out slightly below zero, the two counters being read a moment apart):

${partsTable()}

Configurations: ${rows.map((r) => `"${r.label}" → ${r.workers} worker(s)`).join('; ')}. The first two draw
into a 512x512 viewport, as the plain page does (the window is sized for it and the size checked), so that
both render the same pixels: the headline ratio compares like with like. The second reports one core less to
the page through CDP (\`Emulation.setHardwareConcurrencyOverride\`), so that the viewer's pool-sizing rule (one
worker per core, less Cornerstone's own workers, at least one) starts one worker fewer — the rule that keeps a
core for the page; it runs on the same ${hc} cores. The third is the viewer in a 1400x900 window, its viewport
about 2.5 times the plain page's pixels: in software WebGL, and with the browser compositing the larger window
on the same two cores, that costs both the first render and the whole load.

The CPU rows count the work of every process on the machine (the browser and its workers, the four
services, the benchmark) from the kernel's per-CPU counters over the load: when the cores are busy on
average close to their number, the load is bound by the machine's cores, and only less work, not more
parallelism, makes it faster.

What the figures mean, and what was done for them, is in \`docs/viewer.md\` ("What we measured").

Rerun: \`npm run bench -- viewer\` (about five minutes; the benchmark widens the one-core pinning of
\`bench/run.ts\` again, since the browser, its workers and the four services need the machine), or
\`npx tsx bench/viewer.ts [runs]\`.
`;
const reportPath = await writeReport('viewer', report);
console.log(`\n${report}`);
console.log(`written to ${reportPath}`);
