// The viewer's rendering path in Debian's Chromium: protected CT slices are opened by the decode
// workers and drawn by Cornerstone3D; the canvas of a known slice matches a reference rendering made
// here from the original file at the same window (PS3.3 C.11.2.1.2 linear VOI), and changing slice and
// window changes the picture accordingly.
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { protect, traceIdFrom, traceProtected } from '../src/core/protect/index.ts';
import { generateEncryptionKeys } from '../src/core/pki/issue.ts';
import { keysTicket, testTrust } from '../test/pipeline.ts';
import { sampleFiles } from '../test/samples.ts';
import { launchChromium } from './browser.ts';
import { servePages, type ServedPages } from './pages-server.ts';

let pages: ServedPages;
let browser: Browser;
let page: Page;
const files = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(0, 6);

/** Reference grey levels of the original file at (center, width), computed independently. */
function reference(path: string, center: number, width: number): Uint8Array {
  const ds = parseDicom(new Uint8Array(readFileSync(path))).dataset;
  const raw = ds.get(0x7fe00010)!.value!;
  const slope = ds.number(0x00281053) ?? 1;
  const intercept = ds.number(0x00281052) ?? 0;
  const bits = ds.number(0x00280101) ?? 16;
  const out = new Uint8Array(raw.length / 2);
  for (let i = 0; i < out.length; i++) {
    const stored = (raw[2 * i]! | (raw[2 * i + 1]! << 8)) & ((1 << bits) - 1);
    const x = stored * slope + intercept;
    const lo = center - width / 2;
    out[i] = Math.max(0, Math.min(255, Math.round(((x - lo) / width) * 255)));
  }
  return out;
}

function compare(canvas: number[], ref: Uint8Array): { mean: number; within3: number } {
  const [w, h] = canvas as [number, number];
  expect([w, h]).toEqual([512, 512]);
  let sum = 0;
  let ok = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(canvas[2 + i]! - ref[i]!);
    sum += d;
    if (d <= 3) ok++;
  }
  return { mean: sum / ref.length, within3: ok / ref.length };
}

beforeAll(async () => {
  pages = await servePages('render.html');
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 600, height: 600 }, deviceScaleFactor: 1 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${pages.base}/e2e/pages/render.html`);
  await page.waitForFunction(() => typeof window.renderSeries === 'function');
  const keys = await testTrust();
  const images = [];
  for (const f of files) {
    const p = await protect(new Uint8Array(readFileSync(f)), {
      signer: keys.producer,
      pseudonymKey: new Uint8Array(32),
    });
    const t = await traceProtected(p.bytes, { signer: keys.cloud, traceId: traceIdFrom('render') });
    images.push({ ref: f, bytes: Buffer.from(t).toString('base64'), key: p.imageKey });
  }
  // The keys reach the page's workers as the viewer's do: in a ticket for a device key, which the
  // page imports (non-extractable) from the JWK it is given.
  const device = await generateEncryptionKeys(true);
  const ticket = await keysTicket(keys, images, device);
  const result = await page.evaluate((input) => window.renderSeries(input), {
    trust: keys.bundle,
    images: images.map(({ ref, bytes }) => ({ ref, bytes })),
    ticket: {
      keys: ticket.keys,
      deviceId: ticket.deviceId,
      deviceKey: await crypto.subtle.exportKey('jwk', device.privateKey),
    },
  });
  expect(errors).toEqual([]);
  expect(result.statuses.every((s) => s === 'verified')).toBe(true);
  order = result.order;
}, 180_000);

let order: string[] = [];

afterAll(async () => {
  await browser?.close();
  await pages?.close();
});

describe('rendering protected CT slices', () => {
  it("warms each decode worker up with the build's material: the synthetic slice verifies", async () => {
    await page.waitForFunction(() => {
      const w = window.warmUps();
      return w.statuses.length === w.workers;
    });
    const { statuses, workers } = await page.evaluate(() => window.warmUps());
    expect(workers).toBeGreaterThan(0);
    expect(statuses).toEqual(Array.from({ length: workers }, () => 'verified'));
  });

  it('sorts slices by position along the patient axis', () => {
    const z = order.map((f) =>
      Number(
        parseDicom(new Uint8Array(readFileSync(f)))
          .dataset.text(0x00200032)!
          .split('\\')[2],
      ),
    );
    expect([...z].sort((a, b) => a - b)).toEqual(z);
  });

  it('draws a known slice at lung window as the reference rendering of the original', async () => {
    await page.evaluate(() => window.showSlice(2, -600, 1500));
    const canvas = await page.evaluate(() => window.canvasPixels());
    const { mean, within3 } = compare(canvas, reference(order[2]!, -600, 1500));
    expect(mean).toBeLessThan(1.5);
    expect(within3).toBeGreaterThan(0.99);
    expect(await page.evaluate(() => window.loadErrors)).toEqual([]);
  });

  it('follows a change of slice and of window (soft tissue)', async () => {
    await page.evaluate(() => window.showSlice(4, 40, 400));
    const canvas = await page.evaluate(() => window.canvasPixels());
    const good = compare(canvas, reference(order[4]!, 40, 400));
    expect(good.within3).toBeGreaterThan(0.99);
    // …and it is not what the previous slice or window would have drawn.
    expect(compare(canvas, reference(order[2]!, 40, 400)).within3).toBeLessThan(0.9);
    expect(compare(canvas, reference(order[4]!, -600, 1500)).within3).toBeLessThan(0.5);
  });
});
