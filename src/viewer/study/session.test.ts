// A study session from ticket to verified slices, with the real decode job behind in-process workers
// and a real blind ticket issued to a non-extractable device key; only the cloud is played by the test
// (it serves real protected, traced CT slices — or a corrupted one, or not all of them, or refuses).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleFiles } from '../../../test/samples.ts';
import { fromHex, randomBytes, toHex } from '../../core/bytes.ts';
import type { ConsultAnswer, Retrieved } from '../../core/client/federation.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { generateEncryptionKeys } from '../../core/pki/issue.ts';
import { protect, traceProtected } from '../../core/protect/index.ts';
import { RemoteError } from '../../core/session/protocol.ts';
import { describeProblem } from '../app/problems.ts';
import { WorkerPool, type WorkerLike } from '../pipeline/pool.ts';
import type { WorkerResponse } from '../pipeline/protocol.ts';
import { inProcessWorker, testTicket, testTrust, type TestTrust } from '../../../test/pipeline.ts';
import { StudySession } from './session.ts';

const files = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(10, 16);
let trust: TestTrust;
let device: CryptoKeyPair;
const deviceId = 'd'.repeat(64);
const served: { id: string; bytes: Uint8Array; z: number; number: number }[] = [];
const keys: { id: string; key: Uint8Array }[] = [];
let trace: string;

beforeAll(async () => {
  trust = await testTrust();
  device = await generateEncryptionKeys(false);
  trace = toHex(randomBytes(32));
  for (const [n, f] of files.entries()) {
    const input = new Uint8Array(readFileSync(f));
    const ds = parseDicom(input).dataset;
    const p = await protect(input, { signer: trust.producer, pseudonymKey: new Uint8Array(32) });
    const id = `00000000-0000-4000-8000-00000000000${n}`;
    served.push({
      id,
      bytes: await traceProtected(p.bytes, { signer: trust.cloud, traceId: fromHex(trace) }),
      z: Number(ds.text(0x00200032)!.split('\\')[2]),
      number: ds.number(0x00200013)!,
    });
    keys.push({ id, key: p.imageKey });
  }
});

async function answer(opts: { ttlMs?: number } = {}): Promise<ConsultAnswer> {
  const ticket = await testTicket(trust, {
    deviceId,
    deviceKey: device.publicKey,
    images: keys.map((k) => ({ id: k.id, key: k.key, trace: fromHex(trace) })),
    ttlMs: opts.ttlMs ?? 60_000,
  });
  return {
    ticket,
    trace,
    study: { uid: '1.2', description: 'CT', date: '20000101', modality: 'CT' },
    series: [
      {
        uid: '1.2.3',
        number: 1,
        description: 'chest',
        modality: 'CT',
        // The listing gives no positions: the order comes from the verified headers.
        instances: served.map((s) => ({ id: s.id, number: s.number, position: null })),
      },
    ],
    decision: { rules: ['ATTENDING'], obligations: [] },
  };
}

/** The cloud, as the test plays it; each instance it hands over is logged (`cloud:ID`). */
function cloud(items: Retrieved[], redeem?: () => Promise<never>, log: string[] = []) {
  return {
    redeem:
      redeem ??
      (async () => ({ redemption: 'r'.repeat(32), ticket: 't', images: [], expiresAt: 0 })),
    async *retrieve(): AsyncGenerator<Retrieved> {
      for (const it of items) {
        await new Promise((r) => setTimeout(r, 2));
        log.push(`cloud:${it.id}`);
        yield { id: it.id, bytes: it.bytes.slice() };
      }
    },
  };
}

async function session(
  items: Retrieved[],
  log: string[] = [],
  redeem?: () => Promise<never>,
  firstImageHoldMs?: number,
) {
  let n = 0;
  const pool = new WorkerPool(() => inProcessWorker(log, `w${n++}`), 2);
  await pool.broadcast({ kind: 'trust', trust: trust.bundle });
  const study = new StudySession({
    client: cloud(items, redeem, log),
    pool,
    answer: await answer(),
    device: { decryptionKey: device.privateKey, deviceId },
    ...(firstImageHoldMs !== undefined ? { firstImageHoldMs } : {}),
  });
  return { study, pool };
}

const until = async (ok: () => boolean): Promise<void> => {
  while (!ok()) await new Promise((r) => setTimeout(r, 5));
};

describe('a study session', () => {
  it('opens the ticket in the workers, verifies every slice and orders them by position', async () => {
    const log: string[] = [];
    const { study, pool } = await session(served, log);
    // The loader may ask for a slice before it has arrived: it waits.
    const early = study.get(study.series[0]!.refs[3]!);
    await study.start();
    expect(study.done).toBe(true);
    expect(study.failure).toBeUndefined();
    expect(study.series[0]!.counts).toMatchObject({
      total: 6,
      received: 6,
      verified: 6,
      failed: 0,
    });
    expect((await early).verdict.status).toBe('verified');
    const patient = parseDicom(new Uint8Array(readFileSync(files[0]!))).dataset.text(0x00100020)!;
    for (const v of study.instances.values()) {
      expect(v.badge?.state).toBe('verified');
      // The patient is back, from the encrypted attributes: the served bytes do not carry it.
      expect(v.opened?.meta.patientId).toBe(patient);
      expect(Buffer.from(v.served!).includes(Buffer.from(patient))).toBe(false);
      expect(v.badge?.lines.join(' ')).toMatch(/your ticket/);
      expect(v.opened?.frames[0]?.kind).toBe('int16');
      // What export hands out is exactly what the cloud served.
      expect(
        Buffer.from(v.served!).equals(Buffer.from(served.find((s) => s.id === v.cloudId)!.bytes)),
      ).toBe(true);
    }
    // In display order along the slice normal (axial: the head first, z descending), once the
    // headers are verified.
    const s = study.series[0]!;
    expect(s.orderVerified).toBe(true);
    const zs = s.refs.map((r) => study.instances.get(r)!.opened!.meta.imagePosition![2]);
    expect(zs).toEqual([...served.map((x) => x.z)].sort((a, b) => b - a));
    // The key part went to both workers; no image key ever passed through this thread.
    expect(log.filter((l) => l.endsWith(':ticket'))).toEqual(['w0:ticket', 'w1:ticket']);
    expect(performance.getEntriesByName('ztv:first-verified').length).toBeGreaterThan(0);
    await study.close();
    // Closed: the workers forgot the keys.
    const again = await pool.run({
      kind: 'open',
      ref: served[0]!.id,
      bytes: served[0]!.bytes.slice().buffer,
    });
    expect(again).toMatchObject({ kind: 'failed', code: 'no-key' });
  });

  it('marks a corrupted slice Tampered with its tiles, and one never sent as missing', async () => {
    const bad = served.map((s) => ({ id: s.id, bytes: s.bytes.slice() }));
    bad[2]!.bytes[bad[2]!.bytes.length - 5000]! ^= 0x04;
    const { study } = await session(bad.slice(0, 5));
    const missing = study
      .get([...study.instances.values()].find((v) => v.cloudId === served[5]!.id)!.ref)
      .then(
        () => 'shown',
        (e: Error) => e.message,
      );
    await study.start();
    const c = study.series[0]!.counts;
    expect(c).toMatchObject({ received: 5, verified: 4, tampered: 1, failed: 1 });
    const tampered = [...study.instances.values()].find((v) => v.cloudId === served[2]!.id)!;
    expect(tampered.badge?.state).toBe('tampered');
    expect(tampered.opened?.verdict.tiles.length).toBeGreaterThan(0);
    // Still viewable: its frames are there.
    expect(tampered.opened?.frames.length).toBe(1);
    expect(await missing).toBe('the cloud did not send this image');
    await study.close();
  });

  it('counts a tampered image with nothing to draw once, by its verdict', async () => {
    // A tampered slice whose restoration fails (a restored sample out of range) comes back from the
    // worker with its verdict and no pixels; here the real worker's answer for a tampered slice
    // loses its pixels the same way.
    const bad = served.map((s) => ({ id: s.id, bytes: s.bytes.slice() }));
    bad[2]!.bytes[bad[2]!.bytes.length - 5000]! ^= 0x04;
    const undrawable = (): WorkerLike => {
      const inner = inProcessWorker([], 'w0');
      const w: WorkerLike = {
        onmessage: null,
        onerror: null,
        postMessage: (req, transfer) => inner.postMessage(req, transfer),
        terminate() {},
      };
      inner.onmessage = (e) => {
        const m = e.data;
        w.onmessage?.(
          m.kind === 'opened' && m.verdict.status !== 'verified'
            ? { data: { ...m, meta: undefined, frames: [], header: [] } as WorkerResponse }
            : e,
        );
      };
      return w;
    };
    const pool = new WorkerPool(undrawable, 1);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    const study = new StudySession({
      client: cloud(bad),
      pool,
      answer: await answer(),
      device: { decryptionKey: device.privateKey, deviceId },
      firstImageHoldMs: 0,
    });
    await study.start();
    const c = study.series[0]!.counts;
    expect(c).toMatchObject({ total: 6, received: 6, verified: 5, tampered: 1, failed: 0 });
    // What the progress and the series badge add up: every image once.
    expect(c.verified + c.tampered + c.unverifiable + c.failed).toBe(c.total);
    const tampered = [...study.instances.values()].find((v) => v.cloudId === served[2]!.id)!;
    expect(tampered.badge?.state).toBe('tampered');
    expect(tampered.error).toMatch(/cannot be displayed/);
    await study.close();
  });

  it('holds the stream and the queued opens from the first instance until its image is shown', async () => {
    const log: string[] = [];
    const { study } = await session(served, log, undefined, 60_000);
    const done = study.start();
    const first = [...study.instances.values()].find((v) => v.cloudId === served[0]!.id)!;
    await until(() => first.status === 'opened');
    expect(first.badge?.state).toBe('verified');
    expect(study.series[0]!.counts.received).toBe(1);
    log.push('shown');
    study.shown();
    await done;
    expect(study.series[0]!.counts).toMatchObject({ received: 6, verified: 6 });
    // Verified, not yet drawn: nothing else was taken from the stream or opened until it was shown
    // (without the hold the stream goes on as soon as the first instance is handed to a worker).
    const before = log.slice(0, log.indexOf('shown'));
    expect(before.filter((l) => l.startsWith('cloud:') || l.includes(':open:'))).toEqual([
      `cloud:${served[0]!.id}`,
      `w0:open:${served[0]!.id}`,
    ]);
    await study.close();
  });

  it('ends the hold when the first instance does not verify, and after its bound', async () => {
    // A tampered first slice: the stack starts at the first verified one, which needs the pool.
    const bad = served.map((s) => ({ id: s.id, bytes: s.bytes.slice() }));
    bad[0]!.bytes[bad[0]!.bytes.length - 5000]! ^= 0x04;
    const tampered = await session(bad, [], undefined, 60_000);
    await tampered.study.start();
    expect(tampered.study.series[0]!.counts).toMatchObject({ tampered: 1, verified: 5 });
    await tampered.study.close();
    // Never drawn (no viewer): the stream goes on once the bound has passed.
    const undrawn = await session(served, [], undefined, 100);
    const t0 = performance.now();
    await undrawn.study.start();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(99);
    expect(undrawn.study.series[0]!.counts).toMatchObject({ received: 6, verified: 6 });
    await undrawn.study.close();
  });

  it('fails only the image a dying worker held, and the others verify on the worker left', async () => {
    /** A worker that dies (out of memory, say) on its second open, with that open's bytes. */
    const dying = (): WorkerLike => {
      const inner = inProcessWorker([], 'w0');
      let opens = 0;
      const w: WorkerLike = {
        onmessage: null,
        onerror: null,
        postMessage(req, transfer) {
          if (req.kind === 'open' && ++opens === 2) {
            setTimeout(() => w.onerror?.({ message: 'the decode worker ran out of memory' }), 1);
            return;
          }
          inner.postMessage(req, transfer);
        },
        terminate() {},
      };
      inner.onmessage = (e) => w.onmessage?.(e);
      return w;
    };
    let n = 0;
    const pool = new WorkerPool(() => (n++ === 0 ? dying() : inProcessWorker([], 'w1')), 2);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    const study = new StudySession({
      client: cloud(served),
      pool,
      answer: await answer(),
      device: { decryptionKey: device.privateKey, deviceId },
      firstImageHoldMs: 0,
    });
    await study.start();
    expect(study.done).toBe(true);
    expect(study.failure).toBeUndefined();
    expect(pool.size).toBe(1);
    expect(study.series[0]!.counts).toMatchObject({ received: 6, verified: 5, failed: 1 });
    const lost = [...study.instances.values()].filter((v) => v.status === 'failed');
    expect(lost).toHaveLength(1);
    expect(lost[0]!.error).toMatch(/ran out of memory/);
    // The bytes went down with the worker: that image can be neither shown nor exported.
    expect(lost[0]!.served).toBeUndefined();
    await expect(study.get(lost[0]!.ref)).rejects.toThrow(/ran out of memory/);
    for (const v of study.instances.values())
      if (v !== lost[0]) expect(v.badge?.state).toBe('verified');
    await study.close();
  });

  it('reports an expired ticket the cloud refused, as the clinician will read it', async () => {
    const { study } = await session(served, [], async () => {
      throw new RemoteError(403, 'ticket-refused', 'the ticket has expired');
    });
    const waiting = study.get(study.series[0]!.refs[0]!).then(
      () => 'shown',
      (e: Error) => e.message,
    );
    await study.start();
    expect(study.failure?.step).toBe('redeem');
    const p = describeProblem(study.failure!.error, study.failure!.step);
    expect(p.kind).toBe('expired');
    expect(p.title).toBe('The ticket has expired');
    expect(p.next).toBe('request-again');
    expect(await waiting).toBe('the study could not be retrieved');
    expect(study.series[0]!.counts.received).toBe(0);
  });

  it('asks the cloud for the slice on screen first: the first series in display order', async () => {
    let asked: readonly string[] | undefined;
    const pool = new WorkerPool(() => inProcessWorker([], 'w'), 1);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    const a = await answer();
    // The listing's instance numbers, shuffled: display order is by number, not the ticket's order.
    const listed = a.series[0]!.instances.slice().reverse();
    const study = new StudySession({
      client: {
        ...cloud(served),
        redeem: async (_ticket, first) => {
          asked = first;
          return { redemption: 'r'.repeat(32), ticket: 't', images: [], expiresAt: 0 };
        },
      },
      pool,
      answer: { ...a, series: [{ ...a.series[0]!, instances: listed }] },
      device: { decryptionKey: device.privateKey, deviceId },
    });
    await study.start();
    const byNumber = [...served].sort((x, y) => x.number - y.number).map((x) => x.id);
    expect(asked).toEqual(byNumber);
    expect(asked![0]).toBe(study.instances.get(study.series[0]!.refs[0]!)!.cloudId);
    await study.close();
  });

  it('refuses a ticket whose key part is not for this device', async () => {
    let n = 0;
    const pool = new WorkerPool(() => inProcessWorker([], `w${n++}`), 1);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    const study = new StudySession({
      client: cloud(served),
      pool,
      answer: await answer(),
      device: { decryptionKey: device.privateKey, deviceId: 'e'.repeat(64) },
    });
    await study.start();
    expect(study.failure?.step).toBe('keys');
    expect(describeProblem(study.failure!.error, 'keys').detail).toMatch(/another device/);
  });
});
