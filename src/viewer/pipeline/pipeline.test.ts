// The decode pipeline: the pool schedules by priority across workers, broadcasts configuration, and the
// job opens real protected images into display frames; keys go in and never come back out.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { pemEncode } from '../../core/crypto/keys.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { readPixelData } from '../../core/dicom/pixels.ts';
import { protect, traceIdFrom, traceProtected } from '../../core/protect/index.ts';
import { displayFrame } from './display.ts';
import { DecodeJob } from './job.ts';
import { defaultPoolSize, WorkerPool, type WorkerLike } from './pool.ts';
import type { WorkerRequest, WorkerResponse } from './protocol.ts';

/** The real job code behind a worker-shaped object (messages are cloned as a worker would). */
function inProcessWorker(log: string[], name: string): WorkerLike {
  const job = new DecodeJob();
  const w: WorkerLike = {
    onmessage: null,
    postMessage(req: WorkerRequest) {
      log.push(`${name}:${req.kind}${req.kind === 'open' ? `:${req.ref}` : ''}`);
      const copy = structuredClone(req);
      setTimeout(
        () =>
          void job.handle(copy).then((r) => w.onmessage?.({ data: structuredClone(r.message) })),
        1,
      );
    },
    terminate() {},
  };
  return w;
}

let keys: TestKeys;
const images: { ref: string; bytes: Uint8Array; key: Uint8Array; input: Uint8Array }[] = [];
beforeAll(async () => {
  keys = await testKeys();
  for (const rel of [
    'small/CT_small.dcm',
    'small/MR_small.dcm',
    'small/SC_rgb.dcm',
    'small/emri_small.dcm',
  ]) {
    const input = new Uint8Array(readFileSync(samplePath(rel)));
    const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
    const bytes = await traceProtected(p.bytes, {
      signer: keys.cloud,
      traceId: traceIdFrom('pipeline'),
    });
    images.push({ ref: rel, bytes, key: p.imageKey, input });
  }
});

const trust = () => ({
  producers: [{ pem: pemEncode('PUBLIC KEY', keys.producer.publicKey.spki), subject: 'Producer' }],
  clouds: [{ pem: pemEncode('PUBLIC KEY', keys.cloud.publicKey.spki), subject: 'Cloud' }],
});

describe('decode pipeline', () => {
  it('sizes the pool from the cores, leaving one for the page', () => {
    expect(defaultPoolSize(2)).toBe(1);
    expect(defaultPoolSize(8)).toBe(7);
    expect(defaultPoolSize(undefined)).toBe(1);
  });

  it('opens every image on some worker, verified, with the display frames of the original', async () => {
    const log: string[] = [];
    let n = 0;
    const pool = new WorkerPool(() => inProcessWorker(log, `w${n++}`), 2);
    await pool.broadcast({ kind: 'trust', trust: trust() });
    await pool.broadcast({ kind: 'keys', keys: images.map((i) => ({ ref: i.ref, key: i.key })) });
    expect(log.filter((l) => l.endsWith(':trust'))).toEqual(['w0:trust', 'w1:trust']);
    const results = await Promise.all(
      images.map((i) => pool.run({ kind: 'open', ref: i.ref, bytes: i.bytes.slice().buffer })),
    );
    for (const [k, res] of results.entries()) {
      expect(res.kind).toBe('opened');
      if (res.kind !== 'opened') continue;
      expect(res.verdict.status).toBe('verified');
      expect(res.verdict.trace?.text).toBe('pipeline');
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

  it('serves the highest priority first when workers are busy', async () => {
    const log: string[] = [];
    const pool = new WorkerPool(() => inProcessWorker(log, 'w'), 1);
    await pool.broadcast({ kind: 'trust', trust: trust() });
    await pool.broadcast({ kind: 'keys', keys: images.map((i) => ({ ref: i.ref, key: i.key })) });
    const runs = [
      pool.run(
        { kind: 'open', ref: images[0]!.ref, bytes: images[0]!.bytes.slice().buffer },
        [],
        5,
      ),
      pool.run(
        { kind: 'open', ref: images[1]!.ref, bytes: images[1]!.bytes.slice().buffer },
        [],
        5,
      ),
      pool.run(
        { kind: 'open', ref: images[2]!.ref, bytes: images[2]!.bytes.slice().buffer },
        [],
        0,
      ),
    ];
    await Promise.all(runs);
    // The first was already on the worker; then priority 0 overtakes the queued priority 5.
    expect(log.filter((l) => l.includes(':open:'))).toEqual([
      `w:open:${images[0]!.ref}`,
      `w:open:${images[2]!.ref}`,
      `w:open:${images[1]!.ref}`,
    ]);
  });

  it('says why when it cannot open: no trust, no key, forgotten keys, tampered pixels', async () => {
    const job = new DecodeJob();
    const img = images[0]!;
    const open = () =>
      job.handle({ kind: 'open', id: 1, ref: img.ref, bytes: img.bytes.slice().buffer });
    expect(((await open()).message as WorkerResponse & { code: string }).code).toBe('no-trust');
    await job.handle({ kind: 'trust', id: 2, trust: trust() });
    expect(((await open()).message as WorkerResponse & { code: string }).code).toBe('no-key');
    await job.handle({ kind: 'keys', id: 3, keys: [{ ref: img.ref, key: img.key }] });
    expect((await open()).message.kind).toBe('opened');
    const bad = img.bytes.slice();
    bad[bad.length - 100]! ^= 4;
    const t = await job.handle({ kind: 'open', id: 4, ref: img.ref, bytes: bad.buffer });
    expect(t.message.kind === 'opened' && t.message.verdict.status).toBe('tampered');
    await job.handle({ kind: 'forget', id: 5 });
    expect(((await open()).message as WorkerResponse & { code: string }).code).toBe('no-key');
  });
});
