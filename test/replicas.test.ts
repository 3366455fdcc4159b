// The cloud scales out as stateless replicas over one PostgreSQL database and one blob store: a
// ticket redeems once across all of them — even when both replicas get it at the same moment — and a
// redemption made at one replica is served by another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationClient } from '../src/core/client/federation.ts';
import { pkiResolver } from '../src/core/pki/resolver.ts';
import { openProtected } from '../src/core/protect/index.ts';
import { RemoteError } from '../src/core/session/protocol.ts';
import { freePorts } from '../src/services/launcher.ts';
import { startTestFederation, type TestClinician, type TestFederation } from './federation.ts';

describe('two cloud replicas sharing PostgreSQL', () => {
  let t: TestFederation;
  let bob: TestClinician;
  let second: FederationClient;

  beforeAll(async () => {
    t = await startTestFederation({ postgres: true, slices: 2 });
    const [cloud, cloudInternal] = await freePorts(2);
    await t.fed.start(
      'cloud',
      { ZTV_PORT_CLOUD: String(cloud), ZTV_PORT_CLOUD_INTERNAL: String(cloudInternal) },
      'cloud-2',
    );
    bob = await t.clinician('dr.bob');
    const view = await t.trust();
    second = new FederationClient(
      { ...bob.client.endpoints, cloud: `http://${t.fed.config.host}:${cloud}` },
      bob.device,
      () => view,
    );
  }, 180_000);
  afterAll(async () => {
    await second?.close().catch(() => undefined);
    await t?.close();
  });

  const consult = () =>
    bob.client.consult({
      patient: t.ctPatient,
      purpose: 'TREAT',
      roleAssignments: bob.roleAssignments,
    });

  it('refuses at one replica a ticket redeemed at the other, as a replay', async () => {
    const c = await consult();
    await bob.client.redeem(c.ticket);
    const err = await second.redeem(c.ticket).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).message).toMatch(/already redeemed \(replay\)/);
    const alerts = (await t.audit('cloud')).filter((r) => r.subtype === 'ticket-replayed');
    expect(alerts.some((a) => a.objects.length === 0 && a.details.ticket === c.ticket.tid)).toBe(
      true,
    );
  });

  it('lets exactly one of two simultaneous redemptions of a ticket through', async () => {
    for (let round = 0; round < 3; round++) {
      const c = await consult();
      const results = await Promise.allSettled([
        bob.client.redeem(c.ticket),
        second.redeem(c.ticket),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((refused.reason as Error).message).toMatch(/replay/);
    }
  });

  it('serves from one replica what was redeemed at the other', async () => {
    const c = await consult();
    const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
    const red = await bob.client.redeem(c.ticket);
    const resolver = pkiResolver(await t.trust());
    let n = 0;
    for await (const got of second.retrieve(red.redemption)) {
      const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
      expect(opened.verdict.status).toBe('verified');
      expect(opened.verdict.trace?.id).toBe(c.trace);
      n++;
    }
    expect(n).toBe(t.ct.length);
  });

  it('keeps one audit chain for both replicas, without a fork', async () => {
    const records = await t.audit('cloud');
    const seqs = records.map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    for (let i = 1; i < records.length; i++) expect(records[i]!.prev).toBe(records[i - 1]!.hash);
  });
});
