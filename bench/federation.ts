/**
 * The federation's two scenarios between real processes, timed: outsourcing the 150-slice CT series
 * through the producer (STOW-RS → protect → mutual TLS → cloud), then consultations by a clinician's
 * device — consult (policy, ticket), key part opened, redemption (the cloud signs 150 traces),
 * retrieval of every traced instance in sealed session frames — medians over several rounds. Run:
 * `npm run bench -- federation`; writes bench/reports/federation.md. The services and this client
 * share the machine's cores (the one-core pinning of bench/run.ts is widened again).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { outsource } from '../src/cli/commands/outsource.ts';
import { sampleFiles } from '../test/samples.ts';
import { startTestFederation } from '../test/federation.ts';
import { machine, median, widenToAllCores, writeReport } from './lib.ts';

widenToAllCores();

const ROUNDS = Number(process.argv[2] ?? 7);
const load0 = loadavg()[0]!;
const t = await startTestFederation({ slices: 1 });
try {
  const series = sampleFiles('series/ct_chest_LIDC-IDRI-0314');
  const rest = series.slice(1);
  const sourceBytes = rest.reduce((n, f) => n + readFileSync(f).length, 0);
  let t0 = performance.now();
  const up = await outsource(t.fed.urls.producer, t.fed.secrets.stowToken, rest);
  const outsourceMs = performance.now() - t0;
  if (up.failed.length || up.stored !== rest.length)
    throw new Error(`outsourcing failed: ${up.failed.join('; ')}`);
  t0 = performance.now();
  await outsource(t.fed.urls.producer, t.fed.secrets.stowToken, rest);
  const resendMs = performance.now() - t0;

  const bob = await t.clinician('dr.bob');
  const rows: Record<string, number[]> = {
    consult: [],
    keys: [],
    redeem: [],
    first: [],
    all: [],
    mbps: [],
  };
  let served = 0;
  for (let round = 0; round <= ROUNDS; round++) {
    let s = performance.now();
    const c = await bob.client.consult({
      patient: t.ctPatient,
      purpose: 'TREAT',
      roleAssignments: bob.roleAssignments,
    });
    const consult = performance.now() - s;
    s = performance.now();
    const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
    const keysMs = performance.now() - s;
    s = performance.now();
    const red = await bob.client.redeem(c.ticket);
    const redeem = performance.now() - s;
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
    if (n !== series.length || keys.size !== series.length)
      throw new Error(`round ${round}: ${n} instances, ${keys.size} keys`);
    served = bytes;
    if (round === 0) continue; // warm-up
    rows.consult!.push(consult);
    rows.keys!.push(keysMs);
    rows.redeem!.push(redeem);
    rows.first!.push(first);
    rows.all!.push(all);
    rows.mbps!.push(bytes / 1e6 / (all / 1000));
  }
  const ms = (k: string) =>
    `${median(rows[k]!).toFixed(0)} (${Math.min(...rows[k]!).toFixed(0)}–${Math.max(...rows[k]!).toFixed(0)})`;
  const report = `# Federation: outsourcing and consultation between real processes

The four services as their own processes on this machine (embedded SQLite, files), the real CT series
\`series/ct_chest_LIDC-IDRI-0314\` (150 slices, ${(sourceBytes / 1e6 + readFileSync(series[0]!).length / 1e6).toFixed(1)} MB of source files), a Node client doing what the browser does
(\`src/core/client/federation.ts\`: device key, sessions, ticket). ${ROUNDS} measured consultation rounds after one
warm-up; medians with (min–max).

Machine: ${machine()}; load average ${load0.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after (a shared machine: take figures as lower bounds).

| outsourcing (STOW-RS → protect → mTLS → cloud) | |
| --- | --- |
| 149 new instances | ${(outsourceMs / 1000).toFixed(1)} s — ${(rest.length / (outsourceMs / 1000)).toFixed(1)} instances/s, ${(sourceBytes / 1e6 / (outsourceMs / 1000)).toFixed(1)} MB/s of source |
| the same 149 again (idempotent: nothing stored) | ${(resendMs / 1000).toFixed(2)} s |

| consultation of the 150-slice study | ms |
| --- | --- |
| consult: request logged, trust group, policy, ticket for 150 images | ${ms('consult')} |
| key part opened on the device (150 image keys) | ${ms('keys')} |
| redemption: ticket checked, policy, 150 traces signed, nonce spent, release logged | ${ms('redeem')} |
| retrieval: first traced instance in hand | ${ms('first')} |
| retrieval: all 150 (${(served / 1e6).toFixed(1)} MB in sealed frames) | ${ms('all')} |
| retrieval throughput, MB/s | ${median(rows.mbps!).toFixed(0)} |

Rerun: \`npm run bench -- federation\` (about a minute), or \`npx tsx bench/federation.ts [rounds]\`.
`;
  console.log(report);
  console.log(`wrote ${await writeReport('federation', report)}`);
} finally {
  await t.close();
}
