// Multi-frame images, thumbnails and fullscreen in Debian's Chromium against a real federation: an
// X-ray angiography cine loop (96 frames, one instance) scrolls and plays frame by frame — the overlay
// numbers the frame — and pauses where it is; a CT series' thumbnail is its middle slice in display
// order; fullscreen puts the image stage on the whole screen and `f` leaves it.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samplePath } from '../test/samples.ts';
import { launchChromium } from './browser.ts';
import {
  instanceShown,
  openViewer,
  requestPatient,
  shooting,
  signInAndEnrol,
  submitRequest,
  waitForStudy,
} from './viewer-app.ts';
import { startViewerFederation, type ViewerFederation } from './viewer-federation.ts';

const CINE = samplePath('large/HasFragmentSequence.dcm');

let v: ViewerFederation;
let browser: Browser;

const text = async (page: Page, testId: string) =>
  (await page.getByTestId(testId).first().textContent()) ?? '';
const frameShown = async (page: Page) =>
  Number((await page.getByTestId('overlay-frame').getAttribute('data-frame')) ?? 0);

beforeAll(async () => {
  v = await startViewerFederation({ slices: 5, extra: [CINE] });
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await v?.close();
});

describe('multi-frame, thumbnails, fullscreen', () => {
  it('plays the frames of a multi-frame cine loop, scrolls them and pauses', async () => {
    const patient = v.extra[0]!.patient;
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'frames-cine', async (page) => {
      await signInAndEnrol(page, 'dr.bob');
      await requestPatient(page, patient);
      await submitRequest(page, 'treatment');
      await waitForStudy(page);
      await expect.poll(() => text(page, 'overlay-frame')).toBe(' · Fr 1 / 96');
      expect(await text(page, 'overlay-slice')).toBe('Im 1 / 1');

      // The wheel and the arrows go frame by frame.
      await page.getByTestId('viewport').hover();
      await page.mouse.wheel(0, 120);
      await expect.poll(() => frameShown(page)).toBe(2);
      await page.keyboard.press('End');
      await expect.poll(() => frameShown(page)).toBe(96);
      await page.keyboard.press('Home');
      await expect.poll(() => frameShown(page)).toBe(1);

      // Cine at 20 fps goes through the frames, and stops where it is.
      await page.getByTestId('cine-fps').fill('20');
      await page.getByTestId('cine').click();
      expect(await page.getByTestId('cine').getAttribute('aria-pressed')).toBe('true');
      const seen = new Set<number>();
      await expect
        .poll(async () => {
          seen.add(await frameShown(page));
          return seen.size;
        })
        .toBeGreaterThanOrEqual(4);
      await page.getByTestId('cine').click();
      expect(await page.getByTestId('cine').getAttribute('aria-pressed')).toBe('false');
      let paused = await frameShown(page);
      await expect
        .poll(async () => {
          const before = paused;
          await page.waitForTimeout(300);
          paused = await frameShown(page);
          return paused === before;
        })
        .toBe(true);
      await page.waitForTimeout(500);
      expect(await frameShown(page)).toBe(paused);
      // Still the one instance, verified.
      expect(await text(page, 'overlay-slice')).toBe('Im 1 / 1');
      expect(await text(page, 'integrity-badge')).toMatch(/^Verified/);
    });
  }, 300_000);

  it("shows a series' middle slice as its thumbnail; fullscreen fills the screen and f leaves it", async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'frames-thumb-fullscreen', async (page) => {
      await signInAndEnrol(page, 'dr.bob');
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      await waitForStudy(page);

      // The thumbnail is the slice shown third of five in display order.
      await page.getByTestId('viewport').focus();
      await page.keyboard.press('Home');
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('ArrowDown');
      await expect.poll(() => text(page, 'overlay-slice')).toBe('Im 3 / 5');
      const middle = await instanceShown(page);
      await page.keyboard.press('Home');
      await expect.poll(() => text(page, 'overlay-slice')).toBe('Im 1 / 5');
      expect(await instanceShown(page)).not.toBe(middle);
      await expect
        .poll(() => page.getByTestId('thumbnail').first().getAttribute('data-instance'))
        .toBe(String(middle));

      // Fullscreen: the image stage fills the screen; `f` leaves it.
      await page.getByTestId('fullscreen').click();
      await expect
        .poll(() => page.evaluate(() => document.fullscreenElement?.className ?? ''))
        .toMatch(/\bstage\b/);
      const screen = await page.evaluate(() => [window.innerWidth, window.innerHeight]);
      await expect
        .poll(async () => {
          const b = (await page.getByTestId('viewport').boundingBox())!;
          return [Math.round(b.width), Math.round(b.height)];
        })
        .toEqual(screen);
      await page.keyboard.press('f');
      await expect.poll(() => page.evaluate(() => document.fullscreenElement)).toBe(null);
    });
  }, 300_000);
});
