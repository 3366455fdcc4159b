// The sustained-load part's short slice (bench/reliability/load.ts; the knee and the 10-minute level
// are `npm run bench -- reliability`): a few clinicians, each a Node client with its own device on the
// real protocol (sign-in, consult, open the keys, redeem, retrieve, open verified), round after round
// for a few seconds against one federation. No round fails, and after a warm-up no service's memory
// or open descriptors keep growing from one window of load to the next.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLevel, type LevelResult } from '../bench/reliability/load-clients.ts';
import {
  federationProcesses,
  startTestFederation,
  type ServiceProcess,
  type TestClinician,
  type TestFederation,
} from './federation.ts';

const CLIENTS = 3;
const WINDOW_S = 4;

describe('load, short slice', () => {
  let t: TestFederation;
  const clinicians: TestClinician[] = [];

  beforeAll(async () => {
    t = await startTestFederation({ slices: 3 });
    for (let i = 0; i < CLIENTS; i++) clinicians.push(await t.clinician('dr.bob'));
  }, 180_000);
  afterAll(async () => {
    await t?.close();
  });

  const byName = (ps: ServiceProcess[]) => new Map(ps.map((p) => [p.name, p]));
  const failures = (r: LevelResult) => [...r.errors.values()].reduce((a, b) => a + b, 0);

  it(`${CLIENTS} clients for two windows of ${WINDOW_S} s: no error, memory and descriptors level`, async () => {
    // Warm-up: every client's sessions opened, the services' code paths compiled.
    const warm = await runLevel(t, clinicians, 1);
    expect(warm.samples).toEqual([]);
    const first = await runLevel(t, clinicians, WINDOW_S);
    const mid = byName(federationProcesses(t.dir));
    const second = await runLevel(t, clinicians, WINDOW_S);
    const end = byName(federationProcesses(t.dir));

    for (const r of [first, second]) {
      expect(r.samples).toEqual([]);
      expect(failures(r)).toBe(0);
      // Every client completed rounds, each with every instance of the study.
      expect(r.rounds).toBeGreaterThanOrEqual(CLIENTS);
      expect(r.images).toBe(r.rounds * t.ct.length);
    }
    expect([...end.keys()].sort()).toEqual(['authority', 'cloud', 'consumer', 'producer']);
    for (const [name, p] of end) {
      const before = mid.get(name)!;
      // The same process (nothing died and was restarted under load)…
      expect(p.pid, name).toBe(before.pid);
      // …holding no more descriptors than the clients' connections account for, and not growing
      // by more than garbage collection's slack in resident memory over a window of load.
      expect(p.fds, `${name} descriptors`).toBeLessThanOrEqual(before.fds + 2 * CLIENTS);
      expect(p.rssMiB, `${name} resident MiB`).toBeLessThan(before.rssMiB + 64);
    }
  }, 120_000);
});
