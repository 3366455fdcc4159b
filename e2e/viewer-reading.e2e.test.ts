// Reading conventions and the viewport's tools, in Debian's Chromium against a real federation (20
// CT slices, axial, and 20 MR slices, sagittal): a series opens at its first slice in display order
// (axial: the head end; sagittal: the patient's right), the wheel goes down it (towards the feet,
// towards the left), the orientation markers and the position label name the patient's axes, the
// window overlay shows the header's window as it is (W 2000, not 1999), the scale bar measures the
// pixel spacing, rotate and flip move the markers, the viewport is reachable with the keyboard, the
// overlay text has its own dark backing, `?` lists the shortcuts, and cine plays and pauses.
// Positions and windows are read from the original files independently of the viewer.
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import { launchChromium } from './browser.ts';
import {
  openViewer,
  requestPatient,
  shooting,
  signInAndEnrol,
  sizeViewport,
  submitRequest,
  waitForStudy,
} from './viewer-app.ts';
import { startViewerFederation, type ViewerFederation } from './viewer-federation.ts';

let v: ViewerFederation;
let browser: Browser;

const positions = (files: readonly string[]) =>
  files.map((f) => {
    const ds = parseDicom(new Uint8Array(readFileSync(f))).dataset;
    return ds.text(T.ImagePositionPatient)!.split('\\').map(Number);
  });

const text = async (page: Page, testId: string): Promise<string> =>
  (await page.getByTestId(testId).first().textContent())?.trim() ?? '';

const markers = async (page: Page) => ({
  top: await text(page, 'marker-top'),
  bottom: await text(page, 'marker-bottom'),
  left: await text(page, 'marker-left'),
  right: await text(page, 'marker-right'),
});

async function position(page: Page): Promise<{ axis: string; value: number; label: string }> {
  const el = page.getByTestId('overlay-position');
  return {
    axis: (await el.getAttribute('data-axis')) ?? '',
    value: Number(await el.getAttribute('data-value')),
    label: (await el.textContent()) ?? '',
  };
}

async function waitSlice(page: Page, n: number): Promise<void> {
  await page.waitForFunction(
    (want) =>
      document.querySelector('[data-testid=overlay-slice]')?.textContent?.startsWith(`Im ${want} `),
    n,
  );
}

async function openSeries(page: Page, patient: string): Promise<void> {
  await signInAndEnrol(page, 'dr.bob');
  await requestPatient(page, patient);
  await submitRequest(page, 'treatment');
  await waitForStudy(page);
  await sizeViewport(page);
}

/** WCAG contrast ratio of two sRGB colours given as `rgb(r, g, b)` / `rgba(r, g, b, a)` over black. */
function contrastOverBlack(fg: string, bg: string): number {
  const parse = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
  const [br = 0, bgG = 0, bb = 0, ba = 1] = parse(bg);
  // The backing blended over white, the worst image behind it.
  const over = [br, bgG, bb].map((x) => x * ba + 255 * (1 - ba));
  const lum = (rgb: number[]) => {
    const [r, g, b] = rgb.map((x) => {
      const s = x / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
  };
  const a = lum(parse(fg).slice(0, 3));
  const b = lum(over);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}

beforeAll(async () => {
  v = await startViewerFederation({ slices: 20, mrSlices: 20 });
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await v?.close();
});

describe('reading a series', () => {
  it('axial CT: opens at the head end, the wheel goes towards the feet, markers, window, scale, rotate, flip, keyboard, help', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'reading-ct', async (page) => {
      await openSeries(page, v.ctPatient);
      const zs = positions(v.ct).map((p) => p[2]!);
      const top = Math.max(...zs);
      // The opening slice is the highest z (the head end), whatever the file or stream order.
      await waitSlice(page, 1);
      await expect.poll(async () => (await position(page)).value).toBeCloseTo(top, 2);
      const p1 = await position(page);
      expect(p1.axis).toBe('z');
      // Negative z is towards the feet: "F", never "Z".
      expect(p1.label).toBe(`Pos F ${Math.abs(top).toFixed(2)} mm`);

      // The header's window, as the header says it (-450 / 2000).
      expect(await text(page, 'overlay-wl')).toMatch(/^W 2000 L -450\b/);

      // Axial, seen from the feet: the patient's right on the screen's left, anterior at the top.
      expect(await markers(page)).toEqual({ top: 'A', bottom: 'P', left: 'R', right: 'L' });

      // Wheel down: the next slice, towards the feet.
      const box = (await page.getByTestId('viewport').boundingBox())!;
      await page.mouse.move(box.x + 256, box.y + 256);
      await page.mouse.wheel(0, 100);
      await waitSlice(page, 2);
      const zNext = [...zs].sort((a, b) => b - a)[1]!;
      await expect.poll(async () => (await position(page)).value).toBeCloseTo(zNext, 2);
      await page.mouse.wheel(0, -100);
      await waitSlice(page, 1);

      // The scale bar: its length in pixels times the pixel spacing (1:1 at 512 px) is its label.
      const bar = page.getByTestId('scale-bar');
      const mm = Number(await bar.getAttribute('data-mm'));
      const px = Number(await bar.getAttribute('data-px'));
      expect(await bar.textContent()).toBe(`${mm} mm`);
      expect(Math.abs(px * 0.78125 - mm) / mm).toBeLessThan(0.02);

      // Rotate 90° clockwise: what was on the left comes to the top; flip swaps left and right.
      await page.getByTestId('rotate').click();
      await expect
        .poll(() => markers(page))
        .toEqual({ top: 'R', bottom: 'L', left: 'P', right: 'A' });
      await page.keyboard.press('r');
      await expect
        .poll(() => markers(page))
        .toEqual({ top: 'A', bottom: 'P', left: 'R', right: 'L' });
      await page.keyboard.press('h');
      await expect
        .poll(() => markers(page))
        .toEqual({ top: 'A', bottom: 'P', left: 'L', right: 'R' });
      await page.keyboard.press('v');
      await expect
        .poll(() => markers(page))
        .toEqual({ top: 'P', bottom: 'A', left: 'L', right: 'R' });
      await page.keyboard.press('r');

      // The viewport is in the tab order, and the keys scroll it when it has the focus.
      expect(await page.getByTestId('viewport').getAttribute('tabindex')).toBe('0');
      await page.getByTestId('shortcuts').focus();
      let reached = false;
      for (let i = 0; i < 40 && !reached; i++) {
        await page.keyboard.press('Tab');
        reached = await page.evaluate(
          () => document.activeElement?.getAttribute('data-testid') === 'viewport',
        );
      }
      expect(reached).toBe(true);
      await page.keyboard.press('ArrowDown');
      await waitSlice(page, 2);

      // Overlay text keeps its contrast on the brightest pixels, inverted or not: its own backing.
      for (const inverted of [false, true]) {
        if (inverted) await page.keyboard.press('i');
        for (const id of ['overlay-patient', 'overlay-wl', 'marker-left']) {
          const { color, background } = await page.getByTestId(id).evaluate((e) => ({
            color: getComputedStyle(e).color,
            background: getComputedStyle(e).backgroundColor,
          }));
          expect(contrastOverBlack(color, background)).toBeGreaterThan(4.5);
        }
      }

      // `?` lists the shortcuts, Escape closes the list.
      await page.keyboard.press('?');
      const help = page.getByTestId('shortcut-help');
      await help.waitFor();
      for (const k of ['Home / End', 'o / O', 'h / v', '?'])
        expect(await help.textContent()).toContain(k);
      await page.keyboard.press('Escape');
      await help.waitFor({ state: 'detached' });

      // Cine plays the stack (at the rate asked for) and pauses where it is.
      const slice = async () =>
        Number(/^Im (\d+) /.exec(await text(page, 'overlay-slice'))?.[1] ?? 0);
      await page.getByTestId('cine-fps').fill('20');
      await page.getByTestId('cine').click();
      expect(await page.getByTestId('cine').getAttribute('aria-pressed')).toBe('true');
      const seen = new Set<number>();
      await expect
        .poll(async () => {
          seen.add(await slice());
          return seen.size;
        })
        .toBeGreaterThanOrEqual(4);
      await page.getByTestId('cine').click();
      expect(await page.getByTestId('cine').getAttribute('aria-pressed')).toBe('false');
      // The overlay may still show a frame that was on its way when the pause was clicked: read the
      // slice once it has settled (it never does if the clip still plays at 20 fps), then hold it.
      let paused = await slice();
      await expect
        .poll(async () => {
          const before = paused;
          await page.waitForTimeout(300);
          paused = await slice();
          return paused === before;
        })
        .toBe(true);
      await page.waitForTimeout(1000);
      expect(await slice()).toBe(paused);
    });
  }, 300_000);

  it("sagittal MR: opens at the patient's right, the wheel goes left, markers H/F and A/P", async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'reading-mr', async (page) => {
      await openSeries(page, v.mrPatient);
      const xs = positions(v.mr).map((p) => p[0]!);
      await waitSlice(page, 1);
      // The patient's right is −x: the smallest x first.
      await expect.poll(async () => (await position(page)).value).toBeCloseTo(Math.min(...xs), 2);
      const p1 = await position(page);
      expect(p1.axis).toBe('x');
      expect(p1.label).toMatch(/^Pos [RL] \d+\.\d\d mm$/);
      // This MR is slightly oblique: the dominant direction first, then the others (as OHIF shows).
      const m = await markers(page);
      expect([m.top[0], m.bottom[0], m.left[0], m.right[0]]).toEqual(['H', 'F', 'A', 'P']);
      expect(m.top.length).toBeGreaterThan(1);
      const box = (await page.getByTestId('viewport').boundingBox())!;
      await page.mouse.move(box.x + 256, box.y + 256);
      await page.mouse.wheel(0, 100);
      await waitSlice(page, 2);
      expect((await position(page)).value).toBeGreaterThan(p1.value);
    });
  }, 300_000);
});
