// The producer as a DICOM node, against npm start's federation (real processes) and DCMTK's real
// senders: echoscu answers, an unknown calling AE or a wrong called AE is rejected at association
// (and audited), storescu's instances are protected and stored at the cloud before Success, sending
// them again stores nothing new, an instance that cannot be protected gets a refusal with the
// reason, a data set that is not the instance its request names is refused, and Orthanc (a real
// PACS, in a network namespace of its own) pushes a study when told to through its REST API.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type * as Dimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import type { ProducerTables } from '../src/services/producer/app.ts';
import { startTestFederation, type TestFederation } from './federation.ts';
import { sampleFiles, samplePath } from './samples.ts';

const run = promisify(execFile);
const dimse = createRequire(import.meta.url)('dcmjs-dimse') as typeof Dimse;

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

/**
 * Sends one file with dcmjs-dimse's C-STORE SCU, its request's Affected SOP Class or Instance UID
 * replaced (what DCMTK's storescu cannot be made to do): the response's status and comment.
 */
async function storeAs(
  file: string,
  replace: { sopInstanceUid?: string; sopClassUid?: string },
  port: number,
): Promise<{ status: number; comment: string }> {
  const client = new dimse.Client();
  const request = new dimse.requests.CStoreRequest(file);
  if (replace.sopInstanceUid) request.setAffectedSopInstanceUid(replace.sopInstanceUid);
  if (replace.sopClassUid) request.setAffectedSopClassUid(replace.sopClassUid);
  let answer: { status: number; comment: string } | undefined;
  request.on('response', (r: Dimse.responses.CStoreResponse) => {
    answer = { status: r.getStatus(), comment: r.getErrorComment() };
  });
  client.addRequest(request);
  await new Promise<void>((resolve, reject) => {
    client.on('closed', () => resolve());
    client.on('networkError', (e: Error) => reject(e));
    client.send('127.0.0.1', port, 'STORESCU', 'ZTV_PRODUCER');
  });
  if (!answer) throw new Error('no C-STORE response');
  return answer;
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

  const outsourcings = async () =>
    (await t.audit('producer')).filter((r) => r.subtype === 'outsourcing').length;

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

  it("refuses a data set whose SOP Instance UID is not the request's Affected SOP Instance UID", async () => {
    const before = await instances();
    const stored = parseDicom(new Uint8Array(readFileSync(sent[0]!))).dataset.text(
      T.SOPInstanceUID,
    )!;
    // Another slice announced under the UID of an instance the producer already holds: without the
    // check it would be answered Success from that instance's record.
    const other = sampleFiles('series/ct_chest_LIDC-IDRI-0314')[9]!;
    const r = await storeAs(other, { sopInstanceUid: stored }, Number(port));
    expect(r.status).toBe(0xc000);
    expect(r.comment).toBe('SOP Instance UID differs from Affected SOP Instance UID');
    const otherClass = await storeAs(
      other,
      { sopClassUid: '1.2.840.10008.5.1.4.1.1.7' },
      Number(port),
    );
    expect(otherClass.status).toBe(0xa900);
    expect(otherClass.comment).toBe('SOP Class UID differs from Affected SOP Class UID');
    expect(await instances()).toEqual(before);
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

  it('takes a study Orthanc pushes when told to through its REST API (a real PACS as the sender)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ztv-orthanc-'));
    // Orthanc 1.10 binds every interface: it runs in a network namespace of its own, with only its
    // loopback, and reaches the producer's DICOM port through a Unix socket relayed here (socat in the
    // namespace listens where Orthanc's modality points); its REST API is reached the same way.
    const relay = createNetServer((c) => {
      const up = connect(Number(port), '127.0.0.1');
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relay.listen(join(dir, 'dimse.sock'), r));
    writeFileSync(
      join(dir, 'orthanc.json'),
      JSON.stringify({
        Name: 'ztv-test-pacs',
        StorageDirectory: join(dir, 'storage'),
        IndexDirectory: join(dir, 'storage'),
        HttpPort: 8042,
        DicomPort: 4242,
        DicomAet: 'ORTHANC',
        RemoteAccessAllowed: false,
        AuthenticationEnabled: false,
        HttpCompressionEnabled: false,
        Plugins: [],
        // Outsourcing answers each C-STORE once the cloud holds it: more than Orthanc's 10 s default
        // on a loaded machine.
        DicomScuTimeout: 120,
        DicomModalities: { ztv: ['ZTV_PRODUCER', '127.0.0.1', 11112] },
      }),
    );
    const orthanc = spawn(
      'unshare',
      [
        '-n',
        'sh',
        '-c',
        `ip link set lo up &&
         socat TCP-LISTEN:11112,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${dir}/dimse.sock &
         socat UNIX-LISTEN:${dir}/http.sock,fork TCP:127.0.0.1:8042 &
         exec Orthanc ${dir}/orthanc.json`,
      ],
      { detached: true, stdio: 'ignore' },
    );
    const rest = (method: string, path: string, body?: Uint8Array | string) =>
      new Promise<{ status: number; json: unknown }>((resolve, reject) => {
        const req = httpRequest({ socketPath: join(dir, 'http.sock'), method, path }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const end = Date.now() + 60_000;
      while ((await rest('GET', '/system').catch(() => ({ status: 0 }))).status !== 200) {
        if (Date.now() > end || orthanc.exitCode !== null) throw new Error('Orthanc did not start');
        await new Promise((r) => setTimeout(r, 200));
      }
      const pushed = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(12, 15);
      let study = '';
      for (const f of pushed) {
        const up = await rest('POST', '/instances', readFileSync(f));
        expect(up.status).toBe(200);
        study = (up.json as { ParentStudy: string }).ParentStudy;
      }
      const before = await instances();
      const logged = await outsourcings();
      // What an operator does in Orthanc's UI: send the study to the producer's modality.
      const store = await rest(
        'POST',
        '/modalities/ztv/store',
        JSON.stringify({ Resources: [study], Synchronous: true }),
      );
      expect(store.status, JSON.stringify(store.json)).toBe(200);
      expect(store.json).toMatchObject({
        FailedInstancesCount: 0,
        InstancesCount: pushed.length,
        RemoteAet: 'ZTV_PRODUCER',
        LocalAet: 'ORTHANC',
      });
      // Orthanc heard Success for each: each was protected and stored at the cloud by then.
      const after = await instances();
      expect(after).toHaveLength(before.length + pushed.length);
      for (const f of pushed) {
        const sop = parseDicom(new Uint8Array(readFileSync(f))).dataset.text(T.SOPInstanceUID)!;
        expect(after.find((i) => i.sop_uid === sop)?.status, sop).toBe('done');
      }
      // …and logged once each in the producer's audit chain.
      expect(await outsourcings()).toBe(logged + pushed.length);
    } finally {
      const exited = new Promise((r) => orthanc.once('exit', r));
      // The namespace's processes are one group (Orthanc and its two relays), ended by its id.
      process.kill(-orthanc.pid!, 'SIGTERM');
      await exited;
      await new Promise((r) => relay.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

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
