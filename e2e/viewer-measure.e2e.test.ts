// Measurements in Debian's Chromium against a real federation (5 CT slices), checked against the
// original file measured with pydicom (test/pydicom_roi.py): a length between two known pixels reads
// the distance from Pixel Spacing (±0.5 mm), an ellipse ROI's mean and SD are those of the same pixels
// (±0.5 HU), a probe reads the original HU; the panel lists them with what they rest on, renames,
// deletes and undoes. Then one stored instance corrupted at the cloud: a measurement made on it is
// marked as resting on a Tampered image. The canvas maps the 512×512 slice 1:1 (sizeViewport), so
// image pixel (x, y) has its centre at canvas (x + 0.5, y + 0.5).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import { REPO_ROOT } from '../test/samples.ts';
import { launchChromium } from './browser.ts';
import {
  drag,
  instanceShown,
  measurementRows,
  measurementStats,
  openViewer,
  requestPatient,
  shooting,
  signInAndEnrol,
  sizeViewport,
  submitRequest,
  waitForStudy,
} from './viewer-app.ts';
import {
  corruptCentrePixel,
  startViewerFederation,
  type ViewerFederation,
} from './viewer-federation.ts';

let v: ViewerFederation;
let browser: Browser;
const byNumber = new Map<number, string>();

interface Truth {
  spacing: [number, number];
  values: number[];
  ellipse?: { count: number; mean: number; sd: number; min: number; max: number };
}

function pydicom(file: string, ask: object): Truth {
  return JSON.parse(
    execFileSync(
      '/usr/bin/python3',
      [join(REPO_ROOT, 'test/pydicom_roi.py'), file, JSON.stringify(ask)],
      {
        encoding: 'utf8',
      },
    ),
  ) as Truth;
}

async function openCt(page: Page): Promise<void> {
  await signInAndEnrol(page, 'dr.bob');
  await requestPatient(page, v.ctPatient);
  await submitRequest(page, 'treatment');
  await waitForStudy(page);
  // The panel first: the viewport is then sized with the page's final layout (1:1, no offset).
  await page.getByTestId('panel-measurements').click();
  await sizeViewport(page);
  const box = (await page.getByTestId('viewport').boundingBox())!;
  expect([box.width, box.height]).toEqual([512, 512]);
  await page.getByTestId('reset').click();
}

const rows = measurementRows;
const statsOf = measurementStats;

/** Waits until measurement `i` has settled where `check` holds (the panel follows the drag). */
async function settled(page: Page, i: number, check: (s: Record<string, unknown>) => boolean) {
  await expect.poll(async () => check(await statsOf(page, i))).toBe(true);
  return statsOf(page, i);
}

beforeAll(async () => {
  v = await startViewerFederation({ slices: 5 });
  for (const f of v.ct)
    byNumber.set(
      parseDicom(new Uint8Array(readFileSync(f))).dataset.number(T.InstanceNumber) ?? -1,
      f,
    );
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await v?.close();
});

describe('measurements', () => {
  it('length, ellipse ROI and probe equal pydicom on the original; the panel renames, deletes, undoes', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'measure-verified', async (page) => {
      await openCt(page);
      const file = byNumber.get(await instanceShown(page))!;
      // Cornerstone counts a pixel in an ellipse when its centre lies within the ellipse grown by half a
      // pixel (its pixel-extent test): the same pixels are taken here.
      const truth = pydicom(file, { points: [[256, 200]], ellipse: [160, 280, 30.5, 20.5] });
      const [rs, cs] = truth.spacing;

      // Length from pixel (100, 100) to (300, 250).
      await page.getByTestId('tool-length').click();
      await drag(page, [100, 100], [300, 250]);
      await expect.poll(() => rows(page).count()).toBe(1);
      const expected = Math.hypot(200 * cs, 150 * rs);
      const length = await settled(page, 0, (x) => Math.abs((x.length as number) - expected) < 0.5);
      expect(length.unit).toBe('mm');
      expect(await rows(page).nth(0).getAttribute('data-integrity')).toBe('verified');
      expect(await rows(page).nth(0).getByTestId('measure-rests').textContent()).toContain(
        'Rests on verified pixels',
      );

      // Ellipse ROI: Cornerstone's is drawn from its centre, (160, 280), out to (190, 300): radii 30 × 20.
      await page.getByTestId('tool-ellipse').click();
      await drag(page, [160, 280], [190, 300]);
      await expect.poll(() => rows(page).count()).toBe(2);
      const roi = await settled(
        page,
        1,
        (x) =>
          Math.abs((x.mean as number) - truth.ellipse!.mean) < 0.5 &&
          Math.abs((x.stdDev as number) - truth.ellipse!.sd) < 0.5,
      );
      expect(roi.modalityUnit).toBe('HU');
      expect(roi.areaUnit).toBe('mm²');
      const area = Math.PI * 30 * 20 * rs * cs;
      expect(Math.abs((roi.area as number) - area) / area).toBeLessThan(0.02);

      // Probe at pixel (256, 200): the original HU.
      await page.getByTestId('tool-probe').click();
      const box = (await page.getByTestId('viewport').boundingBox())!;
      await page.mouse.click(box.x + 256.5, box.y + 200.5);
      await expect.poll(() => rows(page).count()).toBe(3);
      const probe = await settled(page, 2, (x) => x.value === truth.values[0]);
      expect(probe.modalityUnit).toBe('HU');

      // Rename, delete, undo.
      await rows(page).nth(0).getByTestId('measure-name').fill('nodule long axis');
      await rows(page).nth(0).getByTestId('measure-name').press('Enter');
      await expect
        .poll(() => rows(page).nth(0).getByTestId('measure-name').inputValue())
        .toBe('nodule long axis');
      await rows(page).nth(2).getByTestId('measure-delete').click();
      await expect.poll(() => rows(page).count()).toBe(2);
      await page.getByTestId('measure-undo').click();
      await expect.poll(() => rows(page).count()).toBe(3);
      expect((await statsOf(page, 2)).value).toBe(truth.values[0]);
    });
  }, 300_000);

  it('marks a measurement made on a Tampered image, in the panel and in the viewport', async () => {
    const blobs = readdirSync(join(v.dir, 'cloud', 'blobs'), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((d) => d.isFile() && !d.name.startsWith('.'))
      .map((d) => join(d.parentPath, d.name))
      .sort();
    const victim = blobs[2]!;
    const good = corruptCentrePixel(victim, 0x04);
    const vp = await openViewer(browser, v.url);
    try {
      await shooting(vp, 'measure-tampered', async (page) => {
        await openCt(page);
        await page.getByTestId('show-tampered').click();
        await expect
          .poll(() => page.getByTestId('integrity-badge').first().textContent())
          .toMatch(/^Tampered/);
        await page.getByTestId('tool-length').click();
        await drag(page, [200, 200], [300, 300]);
        await expect.poll(() => rows(page).count()).toBe(1);
        expect(await rows(page).nth(0).getAttribute('data-integrity')).toBe('tampered');
        expect(await rows(page).nth(0).getByTestId('measure-rests').textContent()).toMatch(
          /Made on a Tampered image: .+/,
        );
        // In the viewport: drawn in the alarm colour, dashed.
        await expect
          .poll(() =>
            page
              .locator('[data-testid=viewport] svg [stroke-dasharray]')
              .evaluateAll((els) => els.map((e) => e.getAttribute('stroke')).join(' ')),
          )
          .toMatch(/rgb\((248, 81, 73|255, 123, 114)\)/);
      });
    } finally {
      writeFileSync(victim, good);
    }
  }, 300_000);
});
