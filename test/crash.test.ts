// A `kill -9` of the cloud in the middle of an upload and in the middle of a redemption leaves no
// partial record anywhere, and the retried operation succeeds. The cloud is stopped dead at a named
// point of its write path (ZTV_FAULT) and killed there with SIGKILL, the way a power cut would.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationClient } from '../src/core/client/federation.ts';
import { sha256 } from '../src/core/crypto/hash.ts';
import { toHex } from '../src/core/bytes.ts';
import { pkiResolver } from '../src/core/pki/resolver.ts';
import { openProtected } from '../src/core/protect/index.ts';
import { outsource } from '../src/cli/commands/outsource.ts';
import { FileBlobStore } from '../src/services/storage/blobs.ts';
import { startTestFederation, type TestClinician, type TestFederation } from './federation.ts';
import { sampleFiles } from './samples.ts';

interface CloudRows {
  instances: { id: string; digest: string };
  redemptions: { id: string; ticket: string };
  spent_nonces: { nonce: string; ticket: string };
  audit_records: { seq: number; subtype: string; objects: string };
}
interface ProducerRows {
  instances: { source_digest: string; status: string; upload_key: string; cloud_id: string | null };
}

describe('the cloud killed with SIGKILL', () => {
  let t: TestFederation;
  let bob: TestClinician;

  beforeAll(async () => {
    t = await startTestFederation({ slices: 2 });
    bob = await t.clinician('dr.bob');
  }, 180_000);
  afterAll(async () => {
    await t?.close();
  });

  /** Restarts the cloud with `env`, forgetting what it printed before. */
  async function restartCloud(env: Record<string, string> = {}): Promise<void> {
    await t.fed.kill('cloud', 'SIGKILL');
    t.output.delete('cloud');
    await t.fed.start('cloud', env);
  }

  const cloudDb = () => t.database<CloudRows>('cloud');
  const producerDb = () => t.database<ProducerRows>('producer');
  const blobs = () => new FileBlobStore(join(t.dir, 'cloud', 'blobs'));

  it('during an upload: no instance row, the producer keeps the instance, the retry stores it once', async () => {
    const file = sampleFiles('series/ct_chest_LIDC-IDRI-0314')[10]!;
    const digest = toHex(sha256(new Uint8Array(readFileSync(file))));
    const db0 = await cloudDb();
    const rowsBefore = await db0.db.selectFrom('instances').select('id').execute();
    await db0.close();
    const blobsBefore = await blobs().list();

    await restartCloud({ ZTV_FAULT: 'cloud:after-blob-write' });
    const upload = outsource(t.fed.urls.producer, t.fed.secrets.stowToken, [file]);
    await t.waitFor('cloud', /"fault":"cloud:after-blob-write"/);
    await t.fed.kill('cloud', 'SIGKILL');
    const first = await upload;
    expect(first.stored).toBe(0);
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]).toMatch(/cloud could not be reached.*kept and goes again/);

    // The blob reached the disk whole, the row never did: an orphan, and nothing that refers to it.
    const db1 = await cloudDb();
    expect(await db1.db.selectFrom('instances').select('id').execute()).toEqual(rowsBefore);
    await db1.close();
    const orphans = (await blobs().list()).filter((b) => !blobsBefore.includes(b));
    expect(orphans).toHaveLength(1);
    const p1 = await producerDb();
    const pending = await p1.db
      .selectFrom('instances')
      .selectAll()
      .where('source_digest', '=', digest)
      .executeTakeFirstOrThrow();
    await p1.close();
    expect(pending.status).toBe('pending');
    const kept = await new FileBlobStore(join(t.dir, 'producer', 'outbox')).get(pending.upload_key);
    // …and the cloud had the very bytes the producer keeps for the retry.
    expect(Buffer.from(await blobs().get(orphans[0]!)).equals(Buffer.from(kept))).toBe(true);

    // Restarted, the cloud sweeps the orphan; the retry sends the same bytes and stores them once.
    await restartCloud({ ZTV_ORPHAN_MIN_AGE_MS: '0' });
    expect((t.output.get('cloud') ?? []).join('\n')).toMatch(/removed 1 orphan blob/);
    expect(await blobs().list()).toEqual(blobsBefore);
    const retry = await outsource(t.fed.urls.producer, t.fed.secrets.stowToken, [file]);
    expect(retry).toEqual({ stored: 1, already: 0, failed: [] });
    const again = await outsource(t.fed.urls.producer, t.fed.secrets.stowToken, [file]);
    expect(again).toEqual({ stored: 1, already: 1, failed: [] });
    const db2 = await cloudDb();
    const rowsAfter = await db2.db.selectFrom('instances').selectAll().execute();
    await db2.close();
    expect(rowsAfter).toHaveLength(rowsBefore.length + 1);
    const added = rowsAfter.find((r) => !rowsBefore.some((b) => b.id === r.id))!;
    expect(added.digest).toBe(toHex(sha256(kept)));
    expect(toHex(sha256(await blobs().get(added.id)))).toBe(added.digest);
    const p2 = await producerDb();
    const done = await p2.db
      .selectFrom('instances')
      .selectAll()
      .where('source_digest', '=', digest)
      .executeTakeFirstOrThrow();
    await p2.close();
    expect(done).toMatchObject({ status: 'done', cloud_id: added.id });
    expect(await new FileBlobStore(join(t.dir, 'producer', 'outbox')).list()).toEqual([]);
  });

  it('during a redemption: nothing spent, nothing logged as released, the retry redeems and serves', async () => {
    const c = await bob.client.consult({
      patient: t.ctPatient,
      purpose: 'TREAT',
      roleAssignments: bob.roleAssignments,
    });
    await bob.client.close();
    await restartCloud({ ZTV_FAULT: 'cloud:before-redemption-commit' });
    // Settled at once, so the failure the kill causes is never an unhandled rejection.
    const redeem = bob.client.redeem(c.ticket).then(
      () => undefined,
      (e: unknown) => e,
    );
    await t.waitFor('cloud', /"fault":"cloud:before-redemption-commit"/);
    await t.fed.kill('cloud', 'SIGKILL');
    expect(await redeem).toBeInstanceOf(Error);

    const db = await cloudDb();
    expect(
      await db.db
        .selectFrom('redemptions')
        .selectAll()
        .where('ticket', '=', c.ticket.tid)
        .execute(),
    ).toEqual([]);
    expect(
      await db.db
        .selectFrom('spent_nonces')
        .selectAll()
        .where('ticket', '=', c.ticket.tid)
        .execute(),
    ).toEqual([]);
    const released = await db.db
      .selectFrom('audit_records')
      .selectAll()
      .where('subtype', '=', 'trace-inserted')
      .execute();
    expect(released.filter((r) => r.objects.includes(c.ticket.tid))).toEqual([]);
    await db.close();

    await restartCloud();
    // The dead process took its sessions with it: the device connects again.
    const view = await t.trust();
    const client = new FederationClient(bob.client.endpoints, bob.device, () => view);
    try {
      const keys = await client.openKeys(c.ticket, t.resolveProducer);
      const red = await client.redeem(c.ticket);
      const resolver = pkiResolver(view);
      let n = 0;
      for await (const got of client.retrieve(red.redemption)) {
        const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
        expect(opened.verdict.status).toBe('verified');
        expect(opened.verdict.trace?.id).toBe(c.trace);
        n++;
      }
      expect(n).toBe(c.series.reduce((k, x) => k + x.instances.length, 0));
      await expect(client.redeem(c.ticket)).rejects.toThrow(/replay/);
    } finally {
      await client.close();
    }
  });
});
