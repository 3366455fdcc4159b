// The producer as a DICOM node, against npm start's federation (real processes) and DCMTK's real
// senders: echoscu answers, an unknown calling AE or a wrong called AE is rejected at association
// (and audited), storescu's instances are protected and stored at the cloud before Success, sending
// them again stores nothing new, and an instance that cannot be protected gets a refusal with the
// reason.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import type { ProducerTables } from '../src/services/producer/app.ts';
import { startTestFederation, type TestFederation } from './federation.ts';
import { sampleFiles, samplePath } from './samples.ts';

const run = promisify(execFile);

/** Runs a DCMTK tool; resolves with its exit code and output (never throws on a non-zero exit). */
async function dcmtk(tool: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run(tool, args, { timeout: 240_000 });
    return { code: 0, out: `${r.stdout}${r.stderr}` };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: `${x.stdout}${x.stderr}` };
  }
}

describe('the producer as a DICOM node (C-ECHO, C-STORE) with DCMTK', () => {
  let t: TestFederation;
  let port: string;
  const sent = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(3, 6);

  beforeAll(async () => {
    t = await startTestFederation();
    port = String(t.fed.config.dimse.port);
  }, 300_000);
  afterAll(async () => {
    await t?.close();
  });

  const instances = async () => {
    const db = await t.database<ProducerTables>('producer');
    try {
      return await db.db.selectFrom('instances').select(['sop_uid', 'status']).execute();
    } finally {
      await db.close();
    }
  };

  it('answers C-ECHO from a configured calling AE title', async () => {
    const r = await dcmtk('echoscu', [
      '-aet',
      'ECHOSCU',
      '-aec',
      'ZTV_PRODUCER',
      '127.0.0.1',
      port,
    ]);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('rejects an association from an unknown calling AE title, or to another called AE title, and audits it', async () => {
    const stranger = await dcmtk('echoscu', [
      '-aet',
      'INTRUDER',
      '-aec',
      'ZTV_PRODUCER',
      '127.0.0.1',
      port,
    ]);
    expect(stranger.code).not.toBe(0);
    expect(stranger.out).toMatch(/Association Rejected/i);
    expect(stranger.out).toMatch(/Calling AE Title Not Recognized/i);
    const wrong = await dcmtk('echoscu', [
      '-aet',
      'ECHOSCU',
      '-aec',
      'OTHER_NODE',
      '127.0.0.1',
      port,
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/Called AE Title Not Recognized/i);
    const refused = (await t.audit('producer')).filter((r) => r.subtype === 'association-refused');
    expect(refused.map((r) => r.actor.id)).toEqual(
      expect.arrayContaining(['ae:INTRUDER', 'ae:ECHOSCU']),
    );
  });

  it('protects and stores each C-STORE at the cloud before answering Success, once', async () => {
    const before = await instances();
    const r = await dcmtk('storescu', [
      '-aet',
      'STORESCU',
      '-aec',
      'ZTV_PRODUCER',
      '127.0.0.1',
      port,
      ...sent,
    ]);
    expect(r.code, r.out).toBe(0);
    const sops = sent.map((f) =>
      parseDicom(new Uint8Array(readFileSync(f))).dataset.text(T.SOPInstanceUID)!,
    );
    const after = await instances();
    expect(after).toHaveLength(before.length + sent.length);
    for (const sop of sops)
      expect(after.find((i) => i.sop_uid === sop)?.status, `instance ${sop}`).toBe('done');
    const cloud = await t.database<{ instances: { id: string } }>('cloud');
    try {
      expect(await cloud.db.selectFrom('instances').select('id').execute()).toHaveLength(
        after.length,
      );
    } finally {
      await cloud.close();
    }
    // Sent again — and one sent before through STOW-RS, in another transfer syntax: nothing new.
    const again = await dcmtk('storescu', [
      '-aet',
      'STORESCU',
      '-aec',
      'ZTV_PRODUCER',
      '-xi',
      '127.0.0.1',
      port,
      ...sent,
      t.ct[0]!,
    ]);
    expect(again.code, again.out).toBe(0);
    expect(await instances()).toHaveLength(after.length);
    const outsourced = (await t.audit('producer')).filter((x) => x.subtype === 'outsourcing');
    expect(outsourced).toHaveLength(after.length);
  }, 300_000);

  it('refuses what it cannot protect with Cannot Understand (C000) and the reason', async () => {
    const before = await instances();
    // A 3×3 secondary capture: too small to carry the protection container.
    const r = await dcmtk('storescu', [
      '-aet',
      'STORESCU',
      '-aec',
      'ZTV_PRODUCER',
      '-d',
      '127.0.0.1',
      port,
      samplePath('odd/SC_rgb_small_odd.dcm'),
    ]);
    expect(r.out).toMatch(/DIMSE Status\s*:\s*0xc000/i);
    expect(r.out).toMatch(/\(0000,0902\) LO \[the image cannot carry the protection container/);
    expect(await instances()).toHaveLength(before.length);
  }, 120_000);

  it('answers A700 while the cloud is down, keeps the instance, and Success once the cloud holds it', async () => {
    const slice = sampleFiles('series/ct_chest_LIDC-IDRI-0314')[6]!;
    const sop = parseDicom(new Uint8Array(readFileSync(slice))).dataset.text(T.SOPInstanceUID)!;
    const send = () =>
      dcmtk('storescu', [
        '-aet',
        'STORESCU',
        '-aec',
        'ZTV_PRODUCER',
        '-d',
        '127.0.0.1',
        port,
        slice,
      ]);
    await t.fed.kill('cloud');
    try {
      const down = await send();
      expect(down.out).toMatch(/DIMSE Status\s*:\s*0xa700/i);
      expect(down.out).toMatch(/\(0000,0902\) LO \[the cloud could not be reached/);
      expect((await instances()).find((i) => i.sop_uid === sop)?.status).toBe('pending');
    } finally {
      await t.fed.start('cloud');
    }
    const up = await send();
    expect(up.out).toMatch(/DIMSE Status\s*:\s*0x0000/i);
    expect((await instances()).find((i) => i.sop_uid === sop)?.status).toBe('done');
  }, 180_000);

  it('speaks DICOM TLS with the hospital certificate when configured', async () => {
    const pki = t.fed.config.pkiDir;
    await t.fed.kill('producer');
    try {
      await t.fed.start('producer', {
        ZTV_DIMSE_TLS_CERT: join(pki, 'producer.pem'),
        ZTV_DIMSE_TLS_KEY: join(pki, 'producer.key.pem'),
      });
      const tls = await dcmtk('echoscu', [
        '+tla',
        '+cf',
        join(pki, 'ca.pem'),
        '-aet',
        'ECHOSCU',
        '-aec',
        'ZTV_PRODUCER',
        '127.0.0.1',
        port,
      ]);
      expect(tls.code, tls.out).toBe(0);
      // Plain DICOM no longer reaches it.
      const plain = await dcmtk('echoscu', [
        '-aet',
        'ECHOSCU',
        '-aec',
        'ZTV_PRODUCER',
        '127.0.0.1',
        port,
      ]);
      expect(plain.code).not.toBe(0);
    } finally {
      await t.fed.kill('producer');
      await t.fed.start('producer');
    }
  }, 180_000);
});
