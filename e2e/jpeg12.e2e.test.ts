// The 12-bit JPEG decoder (src/core/dicom/codecs/jpeg-extended.ts) is isomorphic: inside a Web Worker
// of Debian's Chromium it decodes the 12-bit lossy samples to exactly what DCMTK's dcmdjpeg gives.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import { samplePath } from '../test/samples.ts';
import { launchChromium } from './browser.ts';
import { servePages, type ServedPages } from './pages-server.ts';

let pages: ServedPages;
let browser: Browser;
const dir = mkdtempSync(join(tmpdir(), 'ztv-jpeg12-'));

beforeAll(async () => {
  pages = await servePages('decode.html');
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('12-bit JPEG in the browser', () => {
  it.each(['small/JPGExtended.dcm', 'small/CT0012.fragmented_no_bot_jpeg_baseline.51.dcm'])(
    '%s decodes in a Web Worker to the samples dcmdjpeg gives',
    async (rel) => {
      const ref = join(dir, 'ref.dcm');
      execFileSync('dcmdjpeg', [samplePath(rel), ref]);
      const reference = await readPixelData(parseDicom(new Uint8Array(readFileSync(ref))));
      const expected = createHash('sha256').update(reference.data).digest('hex');

      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${pages.base}/e2e/pages/decode.html`);
      await page.waitForFunction(() => typeof window.decodeInWorker === 'function');
      const out = await page.evaluate((job) => window.decodeInWorker(job), {
        file: readFileSync(samplePath(rel)).toString('base64'),
      });
      expect(errors).toEqual([]);
      expect(out.error).toBeUndefined();
      expect(out.pixelsSha256).toBe(expected);
      await page.close();
    },
  );
});
