// The restore drill, against npm start's federation (real processes, SQLite): outsource, back up
// every party while it runs (`ztv backup`, the producer's encrypted), destroy every data directory,
// restore (`ztv restore`), start again — then every image consults and opens verified and exact, and
// every party's audit chain verifies against the witness. Also: a producer backup is refused without
// a passphrase and does not open with another; restoring over a party's data needs --force; and
// restoring an older backup of the producer is reported by the audit witness as a rollback (the
// party's health raises the alarm, `ztv audit verify` exits 1).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import { T } from '../src/core/dicom/tags.ts';
import { pkiResolver } from '../src/core/pki/resolver.ts';
import { openProtected } from '../src/core/protect/index.ts';
import { main } from '../src/cli/ztv.ts';
import { PARTY_NAMES } from '../src/services/common/config.ts';
import { startTestFederation, type TestFederation } from './federation.ts';

const PASSPHRASE = 'drill passphrase for tests';

describe('backup and restore: the drill', () => {
  let t: TestFederation;
  let out: string;

  beforeAll(async () => {
    t = await startTestFederation();
    out = mkdtempSync(join(tmpdir(), 'ztv-backups-'));
  }, 300_000);
  afterAll(async () => {
    await t?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  const ztv = (...args: string[]) => main(args);
  const common = (party: string) => ['--data', t.dir, '--party', party];

  it('refuses a producer backup without a passphrase', async () => {
    delete process.env.ZTV_BACKUP_PASSPHRASE;
    expect(await ztv('backup', ...common('producer'), join(out, 'none.ztvb'))).not.toBe(0);
    expect(existsSync(join(out, 'none.ztvb'))).toBe(false);
  });

  it('backs up, destroys, restores: every image consults and opens verified, every chain verifies', async () => {
    process.env.ZTV_BACKUP_PASSPHRASE = PASSPHRASE;
    try {
      // While the federation runs; the authority (the witness) first, so no party's restored
      // chain is behind what the restored witness has seen.
      for (const party of ['authority', 'consumer', 'cloud', 'producer'])
        expect(await ztv('backup', ...common(party), join(out, `${party}.ztvb`))).toBe(0);
      // The producer's backup holds no image key or clear byte a reader could find: encrypted.
      const producerBackup = readFileSync(join(out, 'producer.ztvb'));
      expect(producerBackup.subarray(0, 10).toString()).toBe('ZTVBACKUP1');
      expect(producerBackup.includes(readFileSync(join(t.dir, 'producer', 'kek.hex')))).toBe(false);

      await t.fed.stop();
      for (const party of PARTY_NAMES) rmSync(join(t.dir, party), { recursive: true, force: true });

      // Another passphrase does not open it; restoring needs an empty place or --force.
      process.env.ZTV_BACKUP_PASSPHRASE = 'not the drill passphrase';
      expect(await ztv('restore', ...common('producer'), join(out, 'producer.ztvb'))).not.toBe(0);
      process.env.ZTV_BACKUP_PASSPHRASE = PASSPHRASE;
      for (const party of PARTY_NAMES)
        expect(await ztv('restore', ...common(party), join(out, `${party}.ztvb`))).toBe(0);
      expect(await ztv('restore', ...common('cloud'), join(out, 'cloud.ztvb'))).not.toBe(0);

      await t.fed.start('authority');
      await Promise.all([t.fed.start('cloud'), t.fed.start('consumer')]);
      await t.fed.start('producer');

      const bob = await t.clinician('dr.bob');
      const resolver = pkiResolver(await t.trust());
      const sources = [...t.ct, ...t.other];
      const originals = new Map(
        sources.map((f) => {
          const bytes = new Uint8Array(readFileSync(f));
          return [parseDicom(bytes).dataset.text(T.SOPInstanceUID)!, bytes] as const;
        }),
      );
      let opened = 0;
      for (const patient of [t.ctPatient, t.otherPatient]) {
        const c = await bob.client.consult({
          patient,
          purpose: 'TREAT',
          roleAssignments: bob.roleAssignments,
        });
        const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
        const red = await bob.client.redeem(c.ticket);
        for await (const got of bob.client.retrieve(red.redemption)) {
          const o = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
          expect(o.verdict.status).toBe('verified');
          const restored = o.restored!;
          const source = originals.get(restored.dataset.text(T.SOPInstanceUID)!)!;
          const orig = await readPixelData(parseDicom(source));
          expect(Buffer.from(restored.pixels).equals(Buffer.from(orig.data))).toBe(true);
          opened++;
        }
      }
      expect(opened).toBe(sources.length);

      // Intact and reaching the witness's latest checkpoint (exit 0); the consumer hospital, which
      // had signed no checkpoint yet, has nothing witnessed to reach (exit 2: no break found).
      for (const party of PARTY_NAMES) {
        const code = await ztv(
          'audit',
          'verify',
          ...common(party),
          '--pki',
          t.fed.config.pkiDir,
          '--witness',
          t.fed.urls.consumer,
        );
        expect(code, `${party}'s chain`).toBe(party === 'consumer' && code === 2 ? 2 : 0);
      }
    } finally {
      delete process.env.ZTV_BACKUP_PASSPHRASE;
    }
  }, 400_000);

  it('restoring an older backup is reported by the witness as a rollback', async () => {
    process.env.ZTV_BACKUP_PASSPHRASE = PASSPHRASE;
    const health = async () =>
      (await (await fetch(`${t.fed.urls.producer}/health/audit`)).json()) as {
        records: number;
        witness: { state: string; witnessed?: { seq: number }; refused?: { kind: string } };
      };
    const until = async (what: string, ok: (h: Awaited<ReturnType<typeof health>>) => boolean) => {
      const end = Date.now() + 120_000;
      for (;;) {
        const h = await health().catch(() => undefined);
        if (h && ok(h)) return h;
        if (Date.now() > end) throw new Error(`${what}: ${JSON.stringify(h)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    try {
      const old = join(out, 'producer-older.ztvb');
      expect(await ztv('backup', ...common('producer'), old)).toBe(0);
      // The producer goes on (a consultation appends records), and the witness sees its new head:
      // a party signs and sends a checkpoint of its head at every start.
      const bob = await t.clinician('dr.bob');
      await bob.client.consult({
        patient: t.ctPatient,
        purpose: 'TREAT',
        roleAssignments: bob.roleAssignments,
      });
      await t.fed.kill('producer');
      await t.fed.start('producer');
      const ahead = await until(
        'the head witnessed',
        (h) => h.witness.state === 'current' && h.witness.witnessed?.seq === h.records,
      );

      // The operator restores the older backup over it.
      await t.fed.kill('producer');
      expect(await ztv('restore', ...common('producer'), '--force', old)).toBe(0);
      await t.fed.start('producer');
      const behind = await until('the alarm', (h) => h.witness.state === 'refused');
      expect(behind.records).toBeLessThan(ahead.records);
      expect(behind.witness.refused?.kind).toBe('rolled-back');
      // The auditor's verification names the break (exit 1), whatever the party says of itself.
      const code = await ztv(
        'audit',
        'verify',
        ...common('producer'),
        '--pki',
        t.fed.config.pkiDir,
        '--witness',
        t.fed.urls.consumer,
      );
      expect(code).toBe(1);
    } finally {
      delete process.env.ZTV_BACKUP_PASSPHRASE;
    }
  }, 400_000);
});
