// The cloud as several processes behind one port (src/services/cloud/cluster.ts, on PostgreSQL):
// sessions spread over the workers and each session's messages reach the worker that holds it; a
// ticket redeems once whichever worker each attempt reaches; a worker killed is started again and
// its clinicians carry on with a new session; the primary killed takes its workers with it; beyond
// its limits the cloud answers 503 `busy` at once instead of leaving requests hanging.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationClient } from '../src/core/client/federation.ts';
import { pkiResolver } from '../src/core/pki/resolver.ts';
import { openProtected } from '../src/core/protect/index.ts';
import { freePorts } from '../src/services/launcher.ts';
import {
  federationProcesses,
  startTestFederation,
  type TestClinician,
  type TestFederation,
} from './federation.ts';

/** Process ids of this federation's cloud workers (`index` alone, or all). */
const workerPids = (t: TestFederation, index?: number): number[] =>
  federationProcesses(t.dir)
    .filter((p) => (index === undefined ? /^cloud#/.test(p.name) : p.name === `cloud#${index}`))
    .map((p) => p.pid);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the cloud as two workers behind one port, on PostgreSQL', () => {
  let t: TestFederation;
  let bob: TestClinician;
  /** The session ids the cloud gave, as the clients saw them. */
  const sessionIds: string[] = [];
  const clients: FederationClient[] = [];

  /** A client of Bob's device whose fetch notes every cloud session id it is given. */
  const client = async (): Promise<FederationClient> => {
    const view = await t.trust();
    const noting: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      if (String(input).startsWith(`${t.fed.urls.cloud}/session/connect`) && r.ok) {
        const { sessionId } = (await r.clone().json()) as { sessionId: string };
        sessionIds.push(sessionId);
      }
      return r;
    };
    const c = new FederationClient(bob.client.endpoints, bob.device, () => view, noting);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await startTestFederation({
      postgres: true,
      slices: 2,
      env: { ZTV_CLOUD_WORKERS: '2' },
    });
    bob = await t.clinician('dr.bob');
  }, 600_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await t?.close();
  });

  // One session carries one exchange at a time: each client consults through its own sessions.
  const consult = (c: FederationClient = bob.client) =>
    c.consult({
      patient: t.ctPatient,
      purpose: 'TREAT',
      roleAssignments: bob.roleAssignments,
    });

  /** Redeems, retrieves and opens the study through `c`; the number of verified instances. */
  const retrieveAll = async (c: FederationClient): Promise<number> => {
    const con = await consult(c);
    const keys = await c.openKeys(con.ticket, t.resolveProducer);
    const red = await c.redeem(con.ticket);
    const resolver = pkiResolver(await t.trust());
    let n = 0;
    for await (const got of c.retrieve(red.redemption)) {
      const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
      expect(opened.verdict.status).toBe('verified');
      expect(opened.verdict.trace?.id).toBe(con.trace);
      n++;
    }
    return n;
  };

  it('runs two worker processes and spreads sessions over both, each served end to end', async () => {
    expect(workerPids(t)).toHaveLength(2);
    const four = await Promise.all([client(), client(), client(), client()]);
    const done = await Promise.all(four.map((c) => retrieveAll(c)));
    expect(done).toEqual(four.map(() => t.ct.length));
    // Each worker marks its session ids with its index: both made some.
    expect(new Set(sessionIds.map((id) => id.slice(0, 2)))).toEqual(new Set(['00', '01']));
  });

  it('lets exactly one of several simultaneous redemptions of a ticket through', async () => {
    const many = await Promise.all([client(), client(), client(), client()]);
    for (let round = 0; round < 3; round++) {
      const c = await consult();
      const results = await Promise.allSettled(many.map((m) => m.redeem(c.ticket)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect((r.reason as Error).message).toMatch(/replay/);
    }
  });

  it(
    'starts a killed worker again; its clinicians carry on with a new session',
    {
      timeout: 400_000,
    },
    async () => {
      const c = await client();
      expect(await retrieveAll(c)).toBe(t.ct.length);
      const [victim] = workerPids(t, 1);
      process.kill(victim!, 'SIGKILL');
      await t.waitFor('cloud', /worker 1 stopped \(SIGKILL\); starting it again/);
      // While it is down, and once it is back, every client — whichever worker held its session —
      // redeems and retrieves again (a session of the stopped worker is unknown: a new one opens).
      for (const m of clients) expect(await retrieveAll(m)).toBe(t.ct.length);
      await t.waitFor('cloud', /worker 1 is back/, 300_000);
      const [again] = workerPids(t, 1);
      expect(again).not.toBe(victim);
      for (const m of clients) expect(await retrieveAll(m)).toBe(t.ct.length);
    },
  );

  it('answers 503 busy at once beyond its limits, and serves again afterwards', async () => {
    const [cloud, cloudInternal] = await freePorts(2);
    await t.fed.start(
      'cloud',
      {
        ZTV_PORT_CLOUD: String(cloud),
        ZTV_PORT_CLOUD_INTERNAL: String(cloudInternal),
        ZTV_CLOUD_MAX_INFLIGHT: '1',
        ZTV_CLOUD_MAX_QUEUE: '1',
      },
      'cloud-small',
    );
    const url = `http://${t.fed.config.host}:${cloud}/`;
    const answers = await Promise.all(Array.from({ length: 12 }, () => fetch(url)));
    const busy = answers.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(answers.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
    for (const r of busy) {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(await r.json()).toMatchObject({ error: 'busy' });
    }
    expect((await fetch(url)).status).toBe(200);
  }, 400_000);

  it('takes its workers with it when the primary is killed', async () => {
    const workers = workerPids(t);
    expect(workers.length).toBeGreaterThanOrEqual(2);
    await t.fed.kill('cloud', 'SIGKILL');
    await t.fed.kill('cloud-small', 'SIGKILL');
    await until(() => workers.every((p) => !alive(p)), 'the workers to stop');
  });
});
