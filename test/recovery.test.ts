// Recovery of a supervised federation (what `npm start` runs) from `kill -9`: a party killed from
// outside comes back by itself and says so; the devices' sessions it forgot are renewed without a
// security alert; a retrieval cut by the cloud's death resumes at the next instance of the same
// redemption; and a delivery cut short is audited as interrupted, with what was sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../src/core/audit/record.ts';
import { join } from 'node:path';
import { StreamCut, type Retrieved } from '../src/core/client/federation.ts';
import { PartySessions } from '../src/core/client/sessions.ts';
import { retrieve } from '../src/core/operations/redemption.ts';
import { pkiResolver } from '../src/core/pki/resolver.ts';
import { openProtected } from '../src/core/protect/index.ts';
import type { PartyName } from '../src/services/common/config.ts';
import { FileBlobStore } from '../src/services/storage/blobs.ts';
import { startTestFederation, type TestClinician, type TestFederation } from './federation.ts';

const SLICES = 12;

describe('a supervised federation under kill -9', () => {
  let t: TestFederation;
  let bob: TestClinician;
  const said: string[] = [];

  beforeAll(async () => {
    t = await startTestFederation({
      slices: SLICES,
      supervise: { backoffMs: [100, 500, 1000], log: (line) => said.push(line) },
    });
    bob = await t.clinician('dr.bob');
  }, 240_000);
  afterAll(async () => {
    await t?.close();
  });

  async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
    const end = Date.now() + 90_000;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** kill -9 from outside the launcher, as the out-of-memory killer or an operator would. */
  const killNine = (instance: string) => process.kill(t.fed.process(instance)!.pid!, 'SIGKILL');

  const consult = () =>
    bob.client.consult({
      patient: t.ctPatient,
      purpose: 'TREAT',
      roleAssignments: bob.roleAssignments,
    });

  /** The audit records a party appended after the first `n`. */
  const since = async (party: PartyName, n: number): Promise<AuditRecord[]> =>
    (await t.audit(party)).slice(n);

  it('a party killed with kill -9 comes back, says so, serves, and its forgotten sessions raise no alert', async () => {
    // The device holds a session with the producer and one with the cloud.
    const first = await consult();
    await bob.client.redeem(first.ticket);
    const before = {
      producer: (await t.audit('producer')).length,
      cloud: (await t.audit('cloud')).length,
    };

    killNine('cloud');
    killNine('producer');
    await until('both restarted', () => {
      const s = t.fed.status();
      return (['cloud', 'producer'] as const).every(
        (p) => s[p]?.state === 'up' && s[p].restarts === 1,
      );
    });
    expect(t.fed.status().cloud).toMatchObject({ restarts: 1, lastExit: { how: 'SIGKILL' } });
    expect(t.fed.status().producer).toMatchObject({ restarts: 1, lastExit: { how: 'SIGKILL' } });
    for (const party of ['cloud', 'producer']) {
      expect(said).toContainEqual(
        expect.stringMatching(`^${party} died \\(SIGKILL\\); restarting`),
      );
      expect(said).toContain(`${party} is up again (restart 1)`);
      // Its health endpoint says it was restarted, and how its predecessor ended.
      const about = (await (await fetch(`${t.fed.urls[party as 'cloud']}/`)).json()) as Record<
        string,
        unknown
      >;
      expect(about).toMatchObject({ health: 'ok', restarts: 1, lastExit: 'SIGKILL' });
    }

    // The same client, whose sessions both parties forgot, consults, redeems and retrieves.
    const c = await consult();
    const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
    const red = await bob.client.redeem(c.ticket);
    const resolver = pkiResolver(await t.trust());
    let n = 0;
    for await (const got of bob.client.retrieve(red.redemption)) {
      const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
      expect(opened.verdict.status).toBe('verified');
      n++;
    }
    expect(n).toBe(SLICES);

    for (const party of ['producer', 'cloud'] as const) {
      const added = await since(party, before[party]);
      // A stale session is recorded as what it is, a minor authentication failure from an earlier
      // run — not a Security Alert.
      expect(added.filter((r) => r.subtype === 'session-refused')).toEqual([]);
      const stale = added.filter((r) => r.subtype === 'session-stale');
      expect(stale.length).toBeGreaterThanOrEqual(1);
      for (const r of stale) {
        expect(r).toMatchObject({ event: '110114', outcome: 4 });
        expect(r.details).toMatchObject({ reason: 'unknown-session', earlierRun: true });
      }
    }
  });

  it('a retrieval cut by the cloud’s death resumes at the next instance, same redemption, same trace', async () => {
    // The cloud stops dead once two instances of a retrieval have been sent.
    await t.fed.kill('cloud', 'SIGKILL');
    t.output.delete('cloud');
    await t.fed.start('cloud', { ZTV_FAULT: 'cloud:mid-retrieval' });
    const c = await consult();
    const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
    const red = await bob.client.redeem(c.ticket);
    const cloudBefore = (await t.audit('cloud')).length;

    const got: Retrieved[] = [];
    const done = (async () => {
      for await (const r of bob.client.retrieve(red.redemption)) got.push(r);
    })();
    await t.waitFor('cloud', /"fault":"cloud:mid-retrieval"/);
    const before = got.length;
    killNine('cloud');
    await done;

    expect(before).toBeLessThan(SLICES);
    // Every instance once, the whole redemption, each with the trace stamped at redemption.
    expect(got.map((g) => g.id).sort()).toEqual([...red.images].sort());
    const resolver = pkiResolver(await t.trust());
    for (const g of got) {
      const opened = await openProtected(g.bytes, { resolver, imageKey: keys.get(g.id)! });
      expect(opened.verdict.status).toBe('verified');
      expect(opened.verdict.trace?.id).toBe(c.trace);
    }

    // One redemption; the first retrieval's start is recorded, then one from where it was cut.
    const db = await t.database<{ redemptions: { id: string; ticket: string } }>('cloud');
    expect(
      await db.db
        .selectFrom('redemptions')
        .select('id')
        .where('ticket', '=', c.ticket.tid)
        .execute(),
    ).toEqual([{ id: red.redemption }]);
    await db.close();
    const mine = (await since('cloud', cloudBefore)).filter(
      (r) => r.details.redemption === red.redemption,
    );
    const starts = mine.filter((r) => r.subtype === 'retrieve').map((r) => r.details);
    expect(starts).toHaveLength(2);
    expect(starts[0]).toMatchObject({ from: 0, images: SLICES });
    const resumedAt = starts[1]!.from as number;
    expect(resumedAt).toBeGreaterThanOrEqual(1);
    expect(resumedAt).toBeLessThanOrEqual(2);
    expect(starts[1]).toMatchObject({ images: SLICES - resumedAt });
    // The killed process wrote no end of its delivery; the resumed one completed.
    const ends = mine.filter((r) => r.subtype === 'delivered');
    expect(ends.map((r) => [r.outcome, r.details])).toEqual([
      [
        0,
        expect.objectContaining({
          from: resumedAt,
          instances: SLICES - resumedAt,
          of: SLICES - resumedAt,
          complete: true,
        }),
      ],
    ]);
  });

  it('a resume serves nothing beyond the redemption; a cloud that stays down is named with what arrived', async () => {
    const c = await consult();
    const red = await bob.client.redeem(c.ticket);
    // Past the end of the redemption: an empty multipart body (its closing boundary only).
    const view = await t.trust();
    const s = new PartySessions({ cloud: t.fed.urls.cloud }, bob.device, () => view);
    try {
      for (const from of [SLICES, SLICES + 5]) {
        let bytes = 0;
        for await (const ch of s.stream('cloud', retrieve, { redemption: red.redemption, from }))
          bytes += ch.length;
        expect(bytes).toBeLessThan(64);
      }
    } finally {
      await s.close();
    }

    // The cloud stops dead mid-retrieval and is then killed for good (not restarted).
    await t.fed.kill('cloud', 'SIGKILL');
    t.output.delete('cloud');
    await t.fed.start('cloud', { ZTV_FAULT: 'cloud:mid-retrieval' });
    const received: Retrieved[] = [];
    const failure = (async () => {
      for await (const r of bob.client.retrieve(red.redemption, undefined, {
        resumeBackoffMs: [50, 100],
      }))
        received.push(r);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    await t.waitFor('cloud', /"fault":"cloud:mid-retrieval"/);
    await t.fed.kill('cloud', 'SIGKILL');
    const err = await failure;
    expect(err).toBeInstanceOf(StreamCut);
    const bytes = received.reduce((k, r) => k + r.bytes.length, 0);
    expect((err as StreamCut).received).toBe(received.length);
    expect((err as StreamCut).bytes).toBe(bytes);
    expect((err as Error).message).toBe(
      `the cloud cut the retrieval after ${received.length} instance${received.length === 1 ? '' : 's'} (${(bytes / 1e6).toFixed(1)} MB) had arrived: it could not be reached again`,
    );
    await t.fed.start('cloud');
  });

  it('a delivery cut short is audited as interrupted, with the instances and bytes sent', async () => {
    // The third instance of the stream is missing from the cloud's disk: the stream fails there.
    const c = await consult();
    const red = await bob.client.redeem(c.ticket);
    const db = await t.database<{
      redemption_items: { redemption: string; position: number; image: string };
    }>('cloud');
    const items = await db.db
      .selectFrom('redemption_items')
      .select('image')
      .where('redemption', '=', red.redemption)
      .orderBy('position')
      .execute();
    await db.close();
    const blob = join(t.dir, 'cloud', 'blobs');
    const store = new FileBlobStore(blob);
    const third = items[2]!.image;
    const kept = await store.get(third);
    const before = (await t.audit('cloud')).length;
    await store.delete(third);
    const got: Retrieved[] = [];
    try {
      const err = await (async () => {
        for await (const r of bob.client.retrieve(red.redemption)) got.push(r);
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as Error).message).toMatch(/retrieve failed midway/);
    } finally {
      await store.put(third, kept);
    }
    expect(got).toHaveLength(2);
    let ends: AuditRecord[] = [];
    await until('the end of the delivery in the audit', async () => {
      ends = (await since('cloud', before)).filter(
        (r) => r.subtype === 'delivered' && r.details.redemption === red.redemption,
      );
      return ends.length > 0;
    });
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({
      event: '110103',
      outcome: 4,
      details: {
        from: 0,
        instances: 2,
        bytes: got[0]!.bytes.length + got[1]!.bytes.length,
        of: SLICES,
        complete: false,
      },
    });

    // A client that stops reading and closes the connection: the end is recorded all the same.
    const c2 = await consult();
    const red2 = await bob.client.redeem(c2.ticket);
    const ac = new AbortController();
    const before2 = (await t.audit('cloud')).length;
    let n = 0;
    await (async () => {
      for await (const r of bob.client.retrieve(red2.redemption, ac.signal)) {
        void r;
        if (++n === 1) ac.abort();
      }
    })().catch(() => undefined);
    let end: AuditRecord | undefined;
    await until('the end of the aborted delivery', async () => {
      end = (await since('cloud', before2)).find(
        (r) => r.subtype === 'delivered' && r.details.redemption === red2.redemption,
      );
      return !!end;
    });
    const d = end!.details as { instances: number; of: number; complete: boolean };
    // What the cloud handed to the network before the connection closed, and whether that was all.
    expect(d.of).toBe(SLICES);
    expect(d.instances).toBeGreaterThanOrEqual(1);
    expect(d.complete).toBe(d.instances === SLICES);
    expect(end!.outcome).toBe(d.complete ? 0 : 4);
  });
});
