// The decode pipeline: the pool schedules by priority across workers, broadcasts configuration and
// survives a dead worker; the job verifies real protected images through the federation's PKI (pinned
// root, certificate chains, CRLs, trust group), opens the ticket's key part itself with a
// non-extractable device key, and keys go in and never come back out.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { samplePath } from '../../../test/samples.ts';
import { toHex } from '../../core/bytes.ts';
import { generateEncryptionKeys } from '../../core/pki/issue.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { readPixelData } from '../../core/dicom/pixels.ts';
import { protect, traceIdFrom, traceProtected } from '../../core/protect/index.ts';
import { signTrustGroup } from '../../core/pki/trust-group.ts';
import { displayFrame } from './display.ts';
import { DecodeJob } from './job.ts';
import { defaultPoolSize, WorkerPool, type WorkerLike } from './pool.ts';
import type { WarmedNotice, WorkerResponse } from './protocol.ts';
import {
  inProcessWorker,
  keysTicket,
  testTicket,
  testTrust,
  type TestTrust,
  type TicketRequest,
} from '../../../test/pipeline.ts';
import { memoResolver, viewOf } from './trust.ts';

type Failed = Extract<WorkerResponse, { kind: 'failed' }>;
const code = (r: WorkerResponse): string => (r as Failed).code;

let trust: TestTrust;
/** The keys of `images`, as a ticket the workers open. */
let ticket: TicketRequest;
const trace = traceIdFrom('pipeline');
const images: { ref: string; bytes: Uint8Array; key: Uint8Array; input: Uint8Array }[] = [];
beforeAll(async () => {
  trust = await testTrust();
  for (const rel of [
    'small/CT_small.dcm',
    'small/MR_small.dcm',
    'small/SC_rgb.dcm',
    'small/emri_small.dcm',
  ]) {
    const input = new Uint8Array(readFileSync(samplePath(rel)));
    const p = await protect(input, { signer: trust.producer, pseudonymKey: new Uint8Array(32) });
    const bytes = await traceProtected(p.bytes, { signer: trust.cloud, traceId: trace });
    images.push({ ref: rel, bytes, key: p.imageKey, input });
  }
  ticket = await keysTicket(trust, images);
});

describe('decode pipeline', () => {
  it('sizes the pool from the cores, at least one', () => {
    expect(defaultPoolSize(2)).toBe(2);
    expect(defaultPoolSize(8)).toBe(8);
    expect(defaultPoolSize(0)).toBe(1);
    expect(defaultPoolSize(undefined)).toBe(2);
  });

  it('opens every image on some worker, verified up to the pinned root, with the frames of the original', async () => {
    const log: string[] = [];
    let n = 0;
    const pool = new WorkerPool(() => inProcessWorker(log, `w${n++}`), 2);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    await pool.broadcast(ticket);
    expect(log.filter((l) => l.endsWith(':trust'))).toEqual(['w0:trust', 'w1:trust']);
    const results = await Promise.all(
      images.map((i) => pool.run({ kind: 'open', ref: i.ref, bytes: i.bytes.slice().buffer })),
    );
    for (const [k, res] of results.entries()) {
      expect(res.kind).toBe('opened');
      if (res.kind !== 'opened') continue;
      expect(res.verdict.status).toBe('verified');
      expect(res.verdict.trace?.text).toBe('pipeline');
      // The signers are the federation's certificates, chained to its root.
      expect(res.verdict.seal?.signer?.subject).toBe(trust.pki.organisations.producer.cert.subject);
      expect(res.verdict.seal?.signer?.chain.at(-1)).toBe(trust.pki.root.cert.subject);
      expect(res.verdict.trace?.signer?.subject).toBe(trust.pki.organisations.cloud.cert.subject);
      const parsed = parseDicom(images[k]!.input);
      const px = await readPixelData(parsed);
      expect(res.frames.length).toBe(px.info.frames);
      const want = displayFrame(parsed.dataset, px.info, px.data, 0).pixels;
      expect(
        Buffer.from(res.frames[0]!.pixels).equals(
          Buffer.from(want.buffer, want.byteOffset, want.byteLength),
        ),
      ).toBe(true);
      // The image key never travels back.
      expect(
        Buffer.from(JSON.stringify(res)).includes(Buffer.from(images[k]!.key).toString('base64')),
      ).toBe(false);
      expect(res.header.some((r) => r.name === 'PatientID')).toBe(true);
    }
    expect(new Set(log.filter((l) => l.includes(':open:')).map((l) => l.split(':')[0])).size).toBe(
      2,
    );
    pool.terminate();
  });

  it('serves the highest priority first when workers are busy, and re-ranks the queue on demand', async () => {
    const log: string[] = [];
    const pool = new WorkerPool(() => inProcessWorker(log, 'w'), 1);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    await pool.broadcast(ticket);
    const open = (i: number, priority: number) =>
      pool.run(
        { kind: 'open', ref: images[i]!.ref, bytes: images[i]!.bytes.slice().buffer },
        [],
        priority,
      );
    const runs = [open(0, 5), open(1, 5), open(2, 0), open(3, 9)];
    // The clinician scrolled to image 3: it goes before image 1.
    pool.reprioritise((r) => (r.kind === 'open' && r.ref === images[3]!.ref ? 1 : undefined));
    await Promise.all(runs);
    // The first was already on the worker; then priority 0, the re-ranked 1, and the 5 left.
    expect(log.filter((l) => l.includes(':open:'))).toEqual([
      `w:open:${images[0]!.ref}`,
      `w:open:${images[2]!.ref}`,
      `w:open:${images[3]!.ref}`,
      `w:open:${images[1]!.ref}`,
    ]);
  });

  it('holds queued requests, not running ones or broadcasts, until the hold settles', async () => {
    const log: string[] = [];
    const pool = new WorkerPool(() => inProcessWorker(log, 'w'), 1);
    await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    await pool.broadcast(ticket);
    const open = (i: number) =>
      pool.run({ kind: 'open', ref: images[i]!.ref, bytes: images[i]!.bytes.slice().buffer });
    const running = open(0);
    let release!: () => void;
    pool.hold(new Promise<void>((r) => (release = r)));
    const queued = open(1);
    let settled = false;
    void queued.then(() => (settled = true));
    expect((await running).kind).toBe('opened');
    // A broadcast goes past the hold; the queued open does not, though the worker has been free
    // since (the pool hands a freed worker its next request as the answer arrives).
    expect((await pool.broadcast({ kind: 'trust', trust: trust.bundle }))[0]!.kind).toBe('ok');
    expect(log.filter((l) => l.includes(':open:'))).toEqual([`w:open:${images[0]!.ref}`]);
    expect(settled).toBe(false);
    expect(pool.queued).toBe(1);
    release();
    expect((await queued).kind).toBe('opened');
    // A hold that fails releases as well.
    pool.hold(Promise.reject(new Error('no draw')));
    expect((await open(2)).kind).toBe('opened');
    expect(log.filter((l) => l.includes(':open:'))).toEqual(
      [0, 1, 2].map((i) => `w:open:${images[i]!.ref}`),
    );
  });

  it('fails, rather than hangs, the requests of a worker that dies or of a stopped pool', async () => {
    const dead: WorkerLike = {
      onmessage: null,
      onerror: null,
      postMessage() {
        setTimeout(() => dead.onerror?.({ message: 'script failed to load' }), 1);
      },
      terminate() {},
    };
    const pool = new WorkerPool(() => dead, 1);
    const a = pool.run({ kind: 'forget' });
    const b = pool.run({ kind: 'forget' });
    expect(await a).toMatchObject({ kind: 'failed', code: 'worker' });
    expect(await b).toMatchObject({ kind: 'failed', code: 'worker' });
    const stopped = new WorkerPool(() => inProcessWorker([], 'w'), 1);
    const queued = [stopped.run({ kind: 'forget' }), stopped.run({ kind: 'forget' })];
    stopped.cancelQueued();
    expect((await queued[0]!).kind).toBe('ok');
    expect(code(await queued[1]!)).toBe('cancelled');
    stopped.terminate();
    expect(code(await stopped.run({ kind: 'forget' }))).toBe('terminated');
  });

  it('says why when it cannot open: no trust, no key, forgotten keys, tampered pixels', async () => {
    const job = new DecodeJob();
    const img = images[0]!;
    const open = () =>
      job.handle({ kind: 'open', id: 1, ref: img.ref, bytes: img.bytes.slice().buffer });
    // Every answer to an open hands the lent bytes back, transferred and exactly as they were lent.
    const handedBack = (r: Awaited<ReturnType<typeof open>>, sent: Uint8Array) => {
      const m = r.message as { served?: ArrayBuffer };
      expect(m.served && Buffer.from(m.served).equals(Buffer.from(sent))).toBe(true);
      expect(r.transfer).toContain(m.served);
    };
    handedBack(await open(), img.bytes);
    expect(code((await open()).message)).toBe('no-trust');
    await job.handle({ kind: 'trust', id: 2, trust: trust.bundle });
    expect(code((await open()).message)).toBe('no-key');
    await job.handle({ ...(await keysTicket(trust, [img])), id: 3 });
    expect((await open()).message.kind).toBe('opened');
    const bad = img.bytes.slice();
    bad[bad.length - 100]! ^= 4;
    const t = await job.handle({ kind: 'open', id: 4, ref: img.ref, bytes: bad.slice().buffer });
    expect(t.message.kind === 'opened' && t.message.verdict.status).toBe('tampered');
    handedBack(t, bad);
    handedBack(await open(), img.bytes);
    await job.handle({ kind: 'forget', id: 5 });
    expect(code((await open()).message)).toBe('no-key');
  });
});

describe('trust in the workers', () => {
  it('refuses a bundle whose root is not the pinned one, and then verifies nothing', async () => {
    const job = new DecodeJob();
    const other = await testTrust();
    // The hospital serves another federation's root, trust group and certificates.
    const swapped = { ...other.bundle, rootSha256: trust.bundle.rootSha256 };
    const r = await job.handle({ kind: 'trust', id: 1, trust: swapped });
    expect(r.message).toMatchObject({ kind: 'failed', code: 'integrity' });
    expect((r.message as Failed).message).toMatch(/not the root this viewer pinned/);
    await job.handle({ ...ticket, id: 2 });
    const img = images[0]!;
    const o = await job.handle({
      kind: 'open',
      id: 3,
      ref: img.ref,
      bytes: img.bytes.slice().buffer,
    });
    expect(code(o.message)).toBe('no-trust');
  });

  it('refuses a trust group the pinned root did not sign', async () => {
    const other = await testTrust();
    await expect(viewOf({ ...trust.bundle, trustGroup: other.bundle.trustGroup })).rejects.toThrow(
      /not signed by the pinned authority/,
    );
  });

  it('finds images sealed outside the federation unverifiable, with the reason', async () => {
    const stranger = await testTrust();
    const p = await protect(images[1]!.input, {
      signer: stranger.producer,
      pseudonymKey: new Uint8Array(32),
    });
    const bytes = await traceProtected(p.bytes, { signer: trust.cloud, traceId: trace });
    const job = new DecodeJob();
    await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
    await job.handle({ ...(await keysTicket(trust, [{ ref: 'x', key: p.imageKey }])), id: 2 });
    const r = await job.handle({ kind: 'open', id: 3, ref: 'x', bytes: bytes.slice().buffer });
    expect(r.message.kind === 'opened' && r.message.verdict.status).toBe('unverifiable');
    expect(r.message.kind === 'opened' && r.message.verdict.summary).toMatch(
      /no certificate of the federation/,
    );
  });

  it('warms up once trusted: the open path runs on a synthetic image, its first answer posted', async () => {
    const notices: { notice: WarmedNotice; transfer: ArrayBuffer[] }[] = [];
    const job = new DecodeJob((notice, transfer) => notices.push({ notice, transfer }));
    expect(job.warmed).toBeUndefined();
    await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
    expect(await job.warmed).toBe('verified');
    // Posted once, as an opened image is: the container handed back and the 512x512 display frame,
    // the very buffers of the transfer list (the transfer is what the notice is for).
    expect(notices).toHaveLength(1);
    const [{ notice, transfer }] = notices as [(typeof notices)[0]];
    expect(notice.kind).toBe('warmed');
    expect(notice.status).toBe('verified');
    expect(transfer).toHaveLength(2);
    expect(notice.buffers).toEqual(transfer);
    expect(transfer[1]!.byteLength).toBe(512 * 512 * 2);
    expect(transfer[0]!.byteLength).toBeGreaterThan(512 * 512 * 2);
    // The warm-up's key stays its own: the session holds none.
    const r = await job.handle({ kind: 'open', id: 2, ref: 'warm-up', bytes: transfer[0]! });
    expect(r.message.kind === 'failed' && r.message.code).toBe('no-key');
  });

  it("counts each worker's warm-up in the pool, and the notices answer no request", async () => {
    const pool = new WorkerPool(() => inProcessWorker([], 'w'), 2);
    const replies = await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    expect(replies.map((r) => r.kind)).toEqual(['ok', 'ok']);
    await vi.waitFor(() => expect(pool.warmUps).toEqual(['verified', 'verified']), {
      timeout: 60_000,
    });
    // Requests still pair with their own answers after the notices.
    const again = await pool.broadcast({ kind: 'trust', trust: trust.bundle });
    expect(again.map((r) => r.kind)).toEqual(['ok', 'ok']);
    pool.terminate();
  });

  it('memoises a signer only within its chain validity', async () => {
    const view = await viewOf(trust.bundle);
    const resolver = memoResolver(view);
    const keyId = trust.producer.publicKey.keyId;
    const now = await resolver.resolve(keyId, 'producer', new Date());
    expect(now.ok).toBe(true);
    const again = await resolver.resolve(keyId, 'producer', new Date(Date.now() + 1000));
    expect(again.ok && now.ok && again.signer).toBe(now.ok && now.signer);
    // A seal claiming a time before the certificates existed is still refused.
    const before = await resolver.resolve(keyId, 'producer', new Date('1990-01-01T00:00:00Z'));
    expect(before.ok).toBe(false);
    // …and the role still matters.
    expect((await resolver.resolve(keyId, 'cloud', new Date())).ok).toBe(false);
  });
});

describe('tickets opened inside the worker', () => {
  const issue = async (
    deviceKey: CryptoKey,
    deviceId: string,
    opts: { ttlMs?: number; now?: number; signer?: TestTrust['producer'] } = {},
  ) =>
    testTicket(trust, {
      deviceId,
      deviceKey,
      images: images.map((i) => ({ id: i.ref, key: i.key, trace })),
      ttlMs: opts.ttlMs ?? 60_000,
      ...opts,
    });

  it('opens the key part with a non-extractable device key and then the images', async () => {
    const device = await generateEncryptionKeys(false);
    expect(device.privateKey.extractable).toBe(false);
    const deviceId = toHex(crypto.getRandomValues(new Uint8Array(32)));
    const ticket = await issue(device.publicKey, deviceId);
    const job = new DecodeJob();
    await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
    const r = await job.handle({
      kind: 'ticket',
      id: 2,
      keys: ticket.keys,
      decryptionKey: device.privateKey,
      deviceId,
    });
    expect(r.message).toMatchObject({ kind: 'ticket-opened', tid: ticket.tid });
    expect(r.message.kind === 'ticket-opened' && r.message.images).toEqual(
      images.map((i) => i.ref),
    );
    // What comes back names the images, never their keys.
    for (const i of images)
      expect(JSON.stringify(r.message)).not.toContain(Buffer.from(i.key).toString('base64url'));
    for (const [n, i] of images.entries()) {
      const o = await job.handle({
        kind: 'open',
        id: 3 + n,
        ref: i.ref,
        bytes: i.bytes.slice().buffer,
      });
      expect(o.message.kind === 'opened' && o.message.verdict.status).toBe('verified');
    }
  });

  it('keeps a validated ticket signer only for the trust it was validated under', async () => {
    const device = await generateEncryptionKeys(false);
    const deviceId = 'c'.repeat(64);
    const job = new DecodeJob();
    const open = async () =>
      (
        await job.handle({
          kind: 'ticket',
          id: 2,
          keys: (await issue(device.publicKey, deviceId)).keys,
          decryptionKey: device.privateKey,
          deviceId,
        })
      ).message;
    await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
    expect((await open()).kind).toBe('ticket-opened');
    expect((await open()).kind).toBe('ticket-opened');
    // The authority drops the producer from the trust group: its next ticket is refused at once.
    const v2 = {
      version: trust.pki.trustGroup.version + 1,
      issuedAt: new Date().toISOString(),
      members: trust.pki.trustGroup.members.filter((m) => m.role !== 'producer'),
    };
    const dropped = { ...trust.bundle, trustGroup: await signTrustGroup(v2, trust.pki.root) };
    expect((await job.handle({ kind: 'trust', id: 3, trust: dropped })).message.kind).toBe('ok');
    const refused = (await open()) as Failed;
    expect(refused.kind).toBe('failed');
    expect(refused.message).toMatch(/not in trust group version/);
  });

  it("refuses another device's, an expired and a non-producer's ticket", async () => {
    const device = await generateEncryptionKeys(false);
    const deviceId = 'a'.repeat(64);
    const job = new DecodeJob();
    await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
    const open = async (t: Awaited<ReturnType<typeof issue>>, id = deviceId) =>
      (
        await job.handle({
          kind: 'ticket',
          id: 2,
          keys: t.keys,
          decryptionKey: device.privateKey,
          deviceId: id,
        })
      ).message as Failed;
    expect((await open(await issue(device.publicKey, deviceId), 'b'.repeat(64))).message).toMatch(
      /another device/,
    );
    const old = await issue(device.publicKey, deviceId, { ttlMs: 1000, now: Date.now() - 5000 });
    expect((await open(old)).message).toMatch(/expired/);
    const byCloud = await issue(device.publicKey, deviceId, { signer: trust.cloud });
    expect((await open(byCloud)).message).toMatch(/not a producer/);
    expect(code(await open(byCloud))).toBe('ticket');
  });
});

describe('the auditor view of an instance', () => {
  it('lists the container and both signer chains up to the root', async () => {
    const job = new DecodeJob();
    await job.handle({ kind: 'trust', id: 1, trust: trust.bundle });
    const img = images[0]!;
    const r = await job.handle({
      kind: 'inspect',
      id: 2,
      ref: img.ref,
      bytes: img.bytes.slice().buffer,
    });
    expect(r.message.kind).toBe('inspected');
    if (r.message.kind !== 'inspected') return;
    expect(r.message.container.intact).toBe(true);
    expect(r.message.container.trace?.id).toBe(toHex(trace));
    expect(r.message.seal?.status).toBe('valid');
    expect(r.message.seal?.certificates.map((c) => c.subject)).toEqual([
      trust.pki.organisations.producer.cert.subject,
      trust.pki.root.cert.subject,
    ]);
    expect(r.message.seal?.certificates[0]).toMatchObject({ role: 'producer', member: 'producer' });
    expect(r.message.trace?.certificates[0]?.subject).toBe(
      trust.pki.organisations.cloud.cert.subject,
    );
    expect(r.message.trace?.status).toBe('valid');
  });
});
