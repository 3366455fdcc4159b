/**
 * The cloud's whole-series retrieval against Orthanc's WADO-RS series retrieval, same client, same
 * run. Debian's Orthanc (+ its DICOMweb plugin) and the federation's four services run with this
 * benchmark in a private network namespace (Orthanc 1.10 binds every interface: in the namespace
 * only its loopback exists), Orthanc with HTTP compression off and the same 150 CT instances uploaded
 * through its REST API. One Node process — this one — fetches the series from both, interleaved
 * (the order alternates from pair to pair), through the same multipart reader
 * (`src/core/multipart.ts`, what the federation client reads the cloud's answer with): Orthanc by
 * `GET /dicom-web/studies/…/series/…` with `transfer-syntax=*` (the stored bytes), the cloud by a
 * redemption of a fresh ticket, then the retrieval in sealed session frames. Then the cloud is
 * restarted under `--cpu-prof` and a few retrievals are profiled: where its milliseconds go.
 *
 * Run: `npm run bench -- retrieval` (or `npx tsx bench/retrieval.ts [pairs]`); writes
 * bench/reports/retrieval.md. Needs root (or unprivileged user namespaces) for `unshare -n`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { Session } from 'node:inspector/promises';
import { join, relative } from 'node:path';
import { readMultipart } from '../src/core/multipart.ts';
import { REPO_ROOT, sampleFiles } from '../test/samples.ts';
import { startTestFederation, type TestClinician } from '../test/federation.ts';
import { machine, median, processCpuMs, writeReport } from './lib.ts';

const SERIES = 'series/ct_chest_LIDC-IDRI-0314';
const PAIRS = Number(process.argv[2] ?? 15);
const PROFILED = 5;
/** The profilers' sampling interval, µs. */
const PROFILE_US = 250;
const ORTHANC_PORT = 8042;

/**
 * Re-runs this benchmark on every core (bench/run.ts pins to one) in a network namespace of its own
 * with only a loopback, and exits with its status; inside, returns.
 */
function enterPrivateNetwork(): void {
  if (process.env.ZTV_BENCH_NETNS) return;
  const root = process.getuid?.() === 0;
  const child = spawn(
    'taskset',
    [
      '-c',
      `0-${cpus().length - 1}`,
      'unshare',
      ...(root ? ['-n'] : ['-r', '-n']),
      'sh',
      '-c',
      'ip link set lo up && exec "$@"',
      'sh',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        ZTV_BENCH_NETNS: '1',
        ZTV_BENCH_WIDENED: '1',
        UV_THREADPOOL_SIZE: '4',
      },
    },
  );
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => child.kill(s));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  // Nothing else runs here: the rest of the module waits for the child's exit.
  throw new ParentOnly();
}
class ParentOnly extends Error {}

/** Orthanc in this namespace, in a process group of its own (ended by its id in `stop`). */
async function startOrthanc(dir: string): Promise<{ proc: ChildProcess; stop(): Promise<void> }> {
  const config = join(dir, 'orthanc.json');
  writeFileSync(
    config,
    JSON.stringify({
      Name: 'ztv-bench',
      StorageDirectory: join(dir, 'storage'),
      IndexDirectory: join(dir, 'storage'),
      HttpPort: ORTHANC_PORT,
      DicomPort: 4242,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      HttpCompressionEnabled: false,
      StorageCompression: false,
      Plugins: ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so'],
      DicomWeb: { Enable: true, Root: '/dicom-web/' },
    }),
  );
  const proc = spawn('Orthanc', [config], { detached: true, stdio: 'ignore' });
  const guard = () => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(-proc.pid!, 'SIGKILL');
  };
  process.once('exit', guard);
  const stop = async () => {
    process.off('exit', guard);
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    process.kill(-proc.pid!, 'SIGTERM');
    await exited;
  };
  const end = Date.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${ORTHANC}/system`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { proc, stop };
    if (Date.now() > end || proc.exitCode !== null) {
      await stop();
      throw new Error('Orthanc did not start');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
const ORTHANC = `http://127.0.0.1:${ORTHANC_PORT}`;

/** Uploads the files through Orthanc's REST API; returns the series' WADO-RS URL. */
async function uploadToOrthanc(files: readonly string[]): Promise<string> {
  let series = '';
  let study = '';
  for (const f of files) {
    const r = await fetch(`${ORTHANC}/instances`, { method: 'POST', body: readFileSync(f) });
    if (!r.ok) throw new Error(`Orthanc refused ${f}: ${r.status}`);
    const got = (await r.json()) as { ParentSeries: string; ParentStudy: string };
    series = got.ParentSeries;
    study = got.ParentStudy;
  }
  const tags = async (path: string) =>
    ((await (await fetch(`${ORTHANC}${path}`)).json()) as { MainDicomTags: Record<string, string> })
      .MainDicomTags;
  const studyUid = (await tags(`/studies/${study}`)).StudyInstanceUID!;
  const seriesUid = (await tags(`/series/${series}`)).SeriesInstanceUID!;
  return `${ORTHANC}/dicom-web/studies/${studyUid}/series/${seriesUid}`;
}

interface Timing {
  first: number;
  all: number;
  bytes: number;
  n: number;
}

/** Orthanc's whole series in one WADO-RS request, its stored bytes, read part by part. */
async function fromOrthanc(url: string): Promise<Timing> {
  const s = performance.now();
  const r = await fetch(url, {
    headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  if (!r.ok || !r.body) throw new Error(`Orthanc's WADO-RS answered ${r.status}`);
  let first = 0;
  let bytes = 0;
  let n = 0;
  for await (const part of readMultipart(r.body as unknown as AsyncIterable<Uint8Array>, {
    what: "Orthanc's series",
  })) {
    if (!n) first = performance.now() - s;
    bytes += part.body.length;
    n++;
  }
  return { first, all: performance.now() - s, bytes, n };
}

/** The cloud's: a fresh ticket (not timed), its redemption, then the retrieval. */
async function fromCloud(
  bob: TestClinician,
  patient: string,
): Promise<Timing & { redeem: number; window: [bigint, bigint, bigint] }> {
  const c = await bob.client.consult({
    patient,
    purpose: 'TREAT',
    roleAssignments: bob.roleAssignments,
  });
  const h0 = process.hrtime.bigint();
  let s = performance.now();
  const red = await bob.client.redeem(c.ticket);
  const redeem = performance.now() - s;
  const h1 = process.hrtime.bigint();
  s = performance.now();
  let first = 0;
  let bytes = 0;
  let n = 0;
  for await (const got of bob.client.retrieve(red.redemption)) {
    if (!n) first = performance.now() - s;
    bytes += got.bytes.length;
    n++;
  }
  const all = performance.now() - s;
  return { redeem, first, all, bytes, n, window: [h0, h1, process.hrtime.bigint()] };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * Where a profiled process's time went inside the given windows (CLOCK_MONOTONIC µs, the clock of
 * both V8's profile and `process.hrtime`): each sample goes to the innermost frame of the project's
 * own code on its stack (what it called — Node's crypto, fs, streams — counts for it), or, when
 * there is none, to its leaf's module; and separately to its leaf function (self time).
 */
type Window = readonly [number, number];

function summarizeProfile(
  profile: CpuProfile,
  windows: readonly Window[],
): { total: number; idle: number; byOwnCode: Map<string, number>; bySelf: Map<string, number> } {
  const parent = new Map<number, ProfileNode>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const src = `file://${join(REPO_ROOT, 'src')}/`;
  // tsx's output keeps no line numbers worth printing: the file names the place.
  const where = (f: ProfileNode['callFrame']) =>
    f.url.startsWith('file://') ? relative(REPO_ROOT, f.url.slice(7)) : f.url || 'native';
  const name = (f: ProfileNode['callFrame']) => `${f.functionName || '(anonymous)'} ${where(f)}`;
  const module = (f: ProfileNode['callFrame']) =>
    /^\((idle|program|garbage collector)\)$/.test(f.functionName)
      ? f.functionName
      : f.url.startsWith('node:')
        ? `Node: ${f.url.replace(/^node:(internal\/)?/, '').split('/')[0]}`
        : f.url.includes('/node_modules/')
          ? `library: ${/\/node_modules\/((@[^/]+\/)?[^/]+)/.exec(f.url)![1]}`
          : f.url
            ? where(f)
            : `native: ${f.functionName || '(anonymous)'}`;
  const byOwnCode = new Map<string, number>();
  const bySelf = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if (!windows.some(([a, b]) => t >= a && t < b)) continue;
    const leaf = byId.get(profile.samples[i]!)!;
    total += dt;
    if (leaf.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    let own: ProfileNode | undefined = leaf;
    while (own && !own.callFrame.url.startsWith(src)) own = parent.get(own.id);
    const key = own ? name(own.callFrame) : module(leaf.callFrame);
    byOwnCode.set(key, (byOwnCode.get(key) ?? 0) + dt);
    const self = leaf.callFrame.url.startsWith(src) ? name(leaf.callFrame) : module(leaf.callFrame);
    bySelf.set(self, (bySelf.get(self) ?? 0) + dt);
  }
  return { total, idle, byOwnCode, bySelf };
}

// ------------------------------------------------------------------------------------------------

try {
  enterPrivateNetwork();
} catch (e) {
  if (!(e instanceof ParentOnly)) throw e;
  await new Promise(() => {}); // the child's exit ends this process
}

const began = Date.now();
const load0 = loadavg()[0]!;
const files = sampleFiles(SERIES);
const sourceBytes = files.reduce((n, f) => n + readFileSync(f).length, 0);
const dir = mkdtempSync(join(tmpdir(), 'ztv-bench-retrieval-'));
const profDir = join(dir, 'profile');
const orthanc = await startOrthanc(dir);
let t: Awaited<ReturnType<typeof startTestFederation>> | undefined;
const stopAll = async () => {
  await t?.close();
  await orthanc.stop();
  rmSync(dir, { recursive: true, force: true });
};
for (const s of ['SIGINT', 'SIGTERM'] as const)
  process.once(s, () => void stopAll().finally(() => process.exit(130)));
try {
  const [seriesUrl, fed] = await Promise.all([
    uploadToOrthanc(files),
    // At level info the cloud logs each redemption's steps ('redeemed'): the time inside it.
    startTestFederation({ slices: files.length, env: { ZTV_LOG_LEVEL: 'info' } }),
  ]);
  t = fed;
  const cloudPid = () => t!.fed.process('cloud')!.pid!;
  const clientCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  /** Runs `f`, with the CPU milliseconds the client and `pid` used meanwhile. */
  const withCpu = async <R>(pid: number, f: () => Promise<R>) => {
    const c0 = clientCpu();
    const s0 = processCpuMs(pid);
    const r = await f();
    return { r, client: clientCpu() - c0, server: processCpuMs(pid) - s0 };
  };
  const redeemedLines = () =>
    (t!.output.get('cloud') ?? [])
      .filter((l) => l.includes('"redeemed"'))
      .map((l) => JSON.parse(l) as { ms: number; phases: Record<string, number> });
  let bob = await t.clinician('dr.bob');
  const rows: Record<string, number[]> = {};
  const add = (k: string, v: number) => (rows[k] ??= []).push(v);
  let orthancBytes = 0;
  let cloudBytes = 0;
  const skipLines = redeemedLines().length + 1; // and the warm-up's
  for (let pair = 0; pair <= PAIRS; pair++) {
    const orthancRun = () => withCpu(orthanc.proc.pid!, () => fromOrthanc(seriesUrl));
    const cloudRun = () => withCpu(cloudPid(), () => fromCloud(bob, t!.ctPatient));
    // Alternate which goes first, so that whatever the first leaves behind (GC, caches) hits both.
    let o: Awaited<ReturnType<typeof orthancRun>>;
    let c: Awaited<ReturnType<typeof cloudRun>>;
    if (pair % 2) {
      o = await orthancRun();
      c = await cloudRun();
    } else {
      c = await cloudRun();
      o = await orthancRun();
    }
    if (o.r.n !== files.length || c.r.n !== files.length)
      throw new Error(`pair ${pair}: Orthanc sent ${o.r.n} instances, the cloud ${c.r.n}`);
    orthancBytes = o.r.bytes;
    cloudBytes = c.r.bytes;
    if (pair === 0) continue; // warm-up
    add('orthancFirst', o.r.first);
    add('orthancAll', o.r.all);
    add('orthancCpu', o.server);
    add('orthanClientCpu', o.client);
    add('redeem', c.r.redeem);
    add('cloudFirst', c.r.first);
    add('cloudAll', c.r.all);
    add('cloudCpu', c.server);
    add('cloudClientCpu', c.client);
    add('ratioAll', c.r.all / o.r.all);
    add('ratioWithRedeem', (c.r.redeem + c.r.all) / o.r.all);
  }
  const loadPairs = loadavg()[0]!;
  // Give the cloud's last log lines the time to come through its pipe.
  await new Promise((r) => setTimeout(r, 500));
  const inside = redeemedLines().slice(skipLines);
  const steps = Object.keys(inside[0]?.phases ?? {});

  // The cloud again, under V8's sampling profiler, and this client under its own (the inspector):
  // only the redemptions' and retrievals' windows are counted. A fresh device: the cloud's
  // sessions died with it.
  await t.fed.kill('cloud');
  await t.fed.start('cloud', {
    ZTV_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${profDir} --cpu-prof-interval=${PROFILE_US}`,
  });
  bob = await t.clinician('dr.bob');
  await fromCloud(bob, t.ctPatient); // warm-up
  const inspector = new Session();
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.setSamplingInterval', { interval: PROFILE_US });
  await inspector.post('Profiler.start');
  const win = { redeem: [] as Window[], retrieve: [] as Window[], orthanc: [] as Window[] };
  const us = (ns: bigint) => Number(ns / 1000n);
  for (let i = 0; i < PROFILED; i++) {
    const c = await fromCloud(bob, t.ctPatient);
    win.redeem.push([us(c.window[0]), us(c.window[1])]);
    win.retrieve.push([us(c.window[1]), us(c.window[2])]);
    const h0 = process.hrtime.bigint();
    await fromOrthanc(seriesUrl);
    win.orthanc.push([us(h0), us(process.hrtime.bigint())]);
  }
  const { profile: clientProfile } = await inspector.post('Profiler.stop');
  inspector.disconnect();
  await t.fed.kill('cloud'); // writes its profile
  const profFile = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!profFile) throw new Error('the cloud wrote no CPU profile');
  const cloudProfile = JSON.parse(readFileSync(join(profDir, profFile), 'utf8')) as CpuProfile;
  const loadEnd = loadavg()[0]!;

  const mr = (xs: number[] | undefined, digits = 0) =>
    xs && xs.length
      ? `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`
      : 'n/a';
  const mbps = (bytes: number, xs: number[]) => (bytes / 1e6 / (median(xs) / 1000)).toFixed(0);
  const profileSection = (
    title: string,
    profile: CpuProfile,
    windows: readonly Window[],
    what: string,
  ) => {
    const p = summarizeProfile(profile, windows);
    const per = (ms: number) => (ms / windows.length).toFixed(1);
    const busy = p.total - p.idle;
    const table = (m: Map<string, number>, top: number) =>
      [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(
          ([k, v]) => `| \`${k}\` | ${per(v)} | ${((100 * v) / Math.max(busy, 1e-9)).toFixed(0)} |`,
        )
        .join('\n');
    return `### ${title}

${windows.length} ${what}: ${per(p.total)} ms of wall time each, of which the main thread was busy
${per(busy)} ms.

| the project's function (or module) | ms each | % of busy |
| --- | --- | --- |
${table(p.byOwnCode, 10)}

By the function the samples were in (self time):

| function | ms each | % of busy |
| --- | --- | --- |
${table(p.bySelf, 8)}
`;
  };
  const minutes = ((Date.now() - began) / 60_000).toFixed(1);
  const report = `# Retrieval: the cloud against Orthanc's WADO-RS, same client, same run

The real CT series \`${SERIES}\` (${files.length} instances, ${(sourceBytes / 1e6).toFixed(1)} MB of source files) stored
in both: outsourced through the producer to the cloud (protected), and uploaded unchanged to Debian's
${await orthancVersion()} (HTTP compression off, storage compression off) through
its REST API. Both run with this benchmark in a private network namespace (only a loopback; Orthanc
binds every interface). One Node client process fetches the whole series from both, interleaved —
the order alternating from pair to pair — and reads both answers with the same multipart reader
(\`src/core/multipart.ts\`): Orthanc's by one WADO-RS request with \`transfer-syntax=*\` (the stored
bytes, no conversion), the cloud's by redeeming a fresh ticket (ticket checked, policy, traces
signed, nonce spent, release logged) and streaming the traced instances in sealed session frames (the
federation client, \`src/core/client/federation.ts\`). The consultation that makes each ticket is
not timed. ${PAIRS} pairs after one warm-up pair; medians with (min–max); "first" is the first
complete instance in hand, from the request. CPU: what the server's process (all its threads) and
this client's process used during each, from /proc and \`process.cpuUsage\`.

Machine: ${machine()}; load average ${load0.toFixed(1)} before, ${loadPairs.toFixed(1)} after the pairs, ${loadEnd.toFixed(1)} at the end
(a shared machine: absolute figures drift with the load; the ratios of interleaved pairs less so).

| ms | Orthanc | the cloud |
| --- | --- | --- |
| redemption, as the client waits for it | — | ${mr(rows.redeem)} |
| redemption inside the cloud (its log: ticket opened → committed) | — | ${mr(
    inside.map((l) => l.ms),
    1,
  )} |
| first instance in hand | ${mr(rows.orthancFirst)} | ${mr(rows.cloudFirst)} |
| whole series | ${mr(rows.orthancAll)} | ${mr(rows.cloudAll)} |
| whole series, MB/s (of ${(orthancBytes / 1e6).toFixed(1)} and ${(cloudBytes / 1e6).toFixed(1)} MB) | ${mbps(orthancBytes, rows.orthancAll!)} | ${mbps(cloudBytes, rows.cloudAll!)} |
| server CPU (the cloud: redemption + retrieval) | ${mr(rows.orthancCpu)} | ${mr(rows.cloudCpu)} |
| client CPU during the retrieval (the cloud: + redemption) | ${mr(rows.orthanClientCpu)} | ${mr(rows.cloudClientCpu)} |

| ratio, the cloud / Orthanc (median of the pairs' ratios, min–max) | |
| --- | --- |
| whole series | ${mr(rows.ratioAll, 2)} |
| redemption + whole series | ${mr(rows.ratioWithRedeem, 2)} |

The redemption's steps inside the cloud (ms, median of the ${inside.length} measured; \`src/services/cloud/redemption.ts\`):
${steps.map((k) => `${k} ${median(inside.map((l) => l.phases[k] ?? 0)).toFixed(2)}`).join(', ')}.

## Where the time goes

V8's sampling profiler (every ${PROFILE_US} µs) on the cloud (restarted with \`--cpu-prof\`) and on this
client (the inspector), over ${PROFILED} more rounds of a redemption, its retrieval and Orthanc's; only
those windows counted. Each sample counts for the innermost function of the project's own code on
its stack (what it called — Node's crypto, file system, streams — counts for it), or, with none, for
the module it was in. Main threads only: WebCrypto's work and file reads in libuv's threads are
in the CPU rows above, not here.

${profileSection("The cloud's redemption", cloudProfile, win.redeem, 'redemptions')}
${profileSection("The cloud's retrieval", cloudProfile, win.retrieve, 'retrievals')}
${profileSection('The client reading the cloud’s retrieval', clientProfile as CpuProfile, win.retrieve, 'retrievals')}
${profileSection('The client reading Orthanc’s series', clientProfile as CpuProfile, win.orthanc, 'retrievals')}

Rerun: \`npm run bench -- retrieval\` (about ${minutes} minutes here; as root, or where unprivileged user
namespaces are allowed), or \`npx tsx bench/retrieval.ts [pairs]\`.
`;
  console.log(report);
  console.log(`wrote ${await writeReport('retrieval', report)}`);
} finally {
  await stopAll();
}

/** "Orthanc 1.10.1, DICOMweb plugin 1.7", as the running server says. */
async function orthancVersion(): Promise<string> {
  const system = (await (await fetch(`${ORTHANC}/system`)).json()) as { Version: string };
  const plugin = (await (await fetch(`${ORTHANC}/plugins/dicom-web`)).json()) as {
    Version: string;
  };
  return `Orthanc ${system.Version}, DICOMweb plugin ${plugin.Version}`;
}
