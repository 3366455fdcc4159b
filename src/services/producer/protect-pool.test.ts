// The producer's protect pool: worker threads give what `protect` gives in process — the same
// container parameters and file size, a seal by the producer's key that verifies, pixels and header
// that open bit-identical — on every kind of sample, with two threads at once; failures keep their
// reason; a closed pool refuses work.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { ZtvError } from '../../core/errors.ts';
import {
  inspectProtected,
  openProtected,
  protect,
  traceIdFrom,
  traceProtected,
  type Protected,
} from '../../core/protect/index.ts';
import { ProtectPool, protectThreads } from './protect-pool.ts';

let keys: TestKeys;
let pool: ProtectPool;
beforeAll(async () => {
  keys = await testKeys();
  pool = new ProtectPool({ signer: keys.producer, pseudonymKey: keys.pseudonymKey, threads: 2 });
});
afterAll(() => pool.close());

// One of each kind: 16-bit CT, multi-frame RGB (RLE), 32-bit dose, 1-bit, lossy JPEG, J2K frames.
const KINDS = [
  'small/CT_small.dcm',
  'small/SC_rgb_rle_2frame.dcm',
  'small/rtdose.dcm',
  'small/liver.dcm',
  'small/JPEGBaseline_1s_1f_u_08_08.dcm',
  'small/emri_small_jpeg_2k_lossless.dcm',
];

async function opened(p: Protected) {
  const traced = await traceProtected(p.bytes, {
    signer: keys.cloud,
    traceId: traceIdFrom('ticket:pool'),
  });
  const o = await openProtected(traced, { resolver: keys.resolver, imageKey: p.imageKey });
  expect(o.verdict.status, o.verdict.summary).toBe('verified');
  return o.restored!;
}

describe('protect pool', () => {
  it('gives what protect gives in process, on every kind of sample, two at a time', async () => {
    const inputs = KINDS.map((rel) => new Uint8Array(readFileSync(samplePath(rel))));
    const pooled = await Promise.all(inputs.map((b, i) => pool.protect(b, { what: KINDS[i] })));
    for (const [i, input] of inputs.entries()) {
      const local = await protect(input, {
        signer: keys.producer,
        pseudonymKey: keys.pseudonymKey,
        what: KINDS[i],
      });
      const p = pooled[i]!;
      // Same container, same hiding, same file layout; only the random key, IV and UIDs differ.
      expect(p.report, KINDS[i]).toEqual(local.report);
      // The same protected header, element by element (UIDs are new each time: their lengths vary).
      const tags = (b: Uint8Array) =>
        [...parseDicom(b, 'protected').dataset.elements()].map((e) => e.tag);
      expect(tags(p.bytes), KINDS[i]).toEqual(tags(local.bytes));
      expect(p.imageKey.length).toBe(32);
      const [a, b] = await Promise.all([opened(p), opened(local)]);
      expect(Buffer.from(a.pixels).equals(Buffer.from(b.pixels)), KINDS[i]).toBe(true);
      expect(Buffer.from(a.file()).equals(Buffer.from(b.file())), KINDS[i]).toBe(true);
      // Sealed by the producer's key, with the pseudonymous patient reference of the pool's key.
      const [sa, sb] = [inspectProtected(p.bytes).seal, inspectProtected(local.bytes).seal];
      expect(sa?.signerKeyId).toBe(keys.producer.publicKey.keyIdHex);
      expect(sa?.patientRef, KINDS[i]).toBe(sb?.patientRef);
    }
  }, 120_000);

  it('keeps the reason of a refusal, and serves the next instance after it', async () => {
    const bad = new Uint8Array(600).fill(7);
    const local = await protect(bad, {
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
    }).catch((e: unknown) => e);
    const pooled = await pool.protect(bad).catch((e: unknown) => e);
    expect(local).toBeInstanceOf(ZtvError);
    expect(pooled).toBeInstanceOf(ZtvError);
    expect((pooled as ZtvError).code).toBe((local as ZtvError).code);
    expect((pooled as ZtvError).message).toBe((local as ZtvError).message);
    const ok = await pool.protect(new Uint8Array(readFileSync(samplePath(KINDS[0]!))));
    expect(ok.report.format).toBeGreaterThan(0);
  }, 60_000);

  it('a closed pool refuses work; the thread count is validated', async () => {
    const p = new ProtectPool({
      signer: keys.producer,
      pseudonymKey: keys.pseudonymKey,
      threads: 1,
    });
    await p.close();
    await expect(p.protect(new Uint8Array(10))).rejects.toThrow(/closed/);
    expect(protectThreads('3')).toBe(3);
    expect(protectThreads(undefined)).toBeGreaterThanOrEqual(1);
    expect(() => protectThreads('0')).toThrow(/whole number/);
    expect(() => protectThreads('two')).toThrow(/whole number/);
  });
});
