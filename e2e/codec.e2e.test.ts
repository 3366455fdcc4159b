// src/core is isomorphic: the very same code opens a protected real CT slice inside a Web Worker of
// Debian's Chromium, with the same verdict and bit-identical pixels as in Node.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import { pemEncode } from '../src/core/crypto/keys.ts';
import { protect, traceIdFrom, traceProtected } from '../src/core/protect/index.ts';
import { testKeys } from '../test/keys.ts';
import { REPO_ROOT, samplePath } from '../test/samples.ts';
import { launchChromium } from './browser.ts';

let server: PreviewServer;
let outDir: string;
let browser: Browser;
let base: string;

beforeAll(async () => {
  // A production build of the test page, as the viewer will ship: no dev-server dependency discovery.
  outDir = mkdtempSync(join(tmpdir(), 'ztv-e2e-codec-'));
  await build({
    root: REPO_ROOT,
    configFile: false,
    logLevel: 'silent',
    build: {
      outDir,
      emptyOutDir: true,
      rollupOptions: { input: join(REPO_ROOT, 'e2e/pages/codec.html') },
    },
    worker: { format: 'es' },
  });
  server = await preview({
    root: REPO_ROOT,
    configFile: false,
    logLevel: 'silent',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
  });
  base = server.resolvedUrls!.local[0]!.replace(/\/$/, '');
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
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
    await page.goto(`${base}/e2e/pages/codec.html`);
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
