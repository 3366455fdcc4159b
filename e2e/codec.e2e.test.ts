// src/core is isomorphic: the very same code opens a protected real CT slice inside a Web Worker of
// Debian's Chromium, with the same verdict and bit-identical pixels as in Node.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import { pemEncode } from '../src/core/crypto/keys.ts';
import { protect, traceIdFrom, traceProtected } from '../src/core/protect/index.ts';
import { testKeys } from '../test/keys.ts';
import { samplePath } from '../test/samples.ts';
import { launchChromium } from './browser.ts';
import { servePages, type ServedPages } from './pages-server.ts';

let pages: ServedPages;
let browser: Browser;

beforeAll(async () => {
  pages = await servePages('codec.html');
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await pages?.close();
});

describe('the codec in the browser', () => {
  it('opens a protected CT slice in a Web Worker: verified, same pixels as the original', async () => {
    const keys = await testKeys();
    const input = new Uint8Array(
      readFileSync(samplePath('series/ct_chest_LIDC-IDRI-0314/000002.dcm')),
    );
    const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
    const traced = await traceProtected(p.bytes, {
      signer: keys.cloud,
      traceId: traceIdFrom('browser-ticket'),
    });
    const original = await readPixelData(parseDicom(input));
    const expected = createHash('sha256').update(original.data).digest('hex');

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${pages.base}/e2e/pages/codec.html`);
    await page.waitForFunction(() => typeof window.openInWorker === 'function');
    const outcome = await page.evaluate((job) => window.openInWorker(job), {
      image: Buffer.from(traced).toString('base64'),
      imageKey: Buffer.from(p.imageKey).toString('base64'),
      producerPem: pemEncode('PUBLIC KEY', keys.producer.publicKey.spki),
      cloudPem: pemEncode('PUBLIC KEY', keys.cloud.publicKey.spki),
    });
    expect(errors).toEqual([]);
    expect(outcome.error).toBeUndefined();
    expect(outcome.status, outcome.summary).toBe('verified');
    expect(outcome.pixelsSha256).toBe(expected);
    expect(outcome.traceText).toBe('browser-ticket');
    expect(outcome.patientId).toBe('LIDC-IDRI-0314'); // restored from the encrypted attributes
    await page.close();
  });
});
