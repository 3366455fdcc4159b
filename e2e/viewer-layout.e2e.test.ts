// Layouts and MPR in Debian's Chromium against a real federation. The study: 16 contiguous CT slices
// (1 mm apart), a series derived from every other one of them (2 mm apart: same patient, study and
// frame of reference, new series and instance UIDs, written with pydicom and checked with DCMTK and
// GDCM) and a series of one of them alone.
// - A 2×2 layout: a series goes into the active viewport by a click on its thumbnail or into any
//   viewport by dragging it; with synchronisation on (the default), the active viewport drives: N
//   arrow presses move it and the same CT in another viewport N slices, the 2 mm series to the same
//   position (read from the original files), the wheel on a cell drives from there, a window preset
//   or key reaches every viewport of the frame of reference; off, the keys act on the active
//   viewport alone.
// - MPR of the CT: the voxel under the pointer in the sagittal and coronal views equals the original
//   voxel at that world position read with pydicom (test/pydicom_voxel.py); the badge says every
//   slice is verified; the single image is refused with the reason.
// - One stored CT instance corrupted at the cloud: the MPR badge names that slice.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import { REPO_ROOT, sampleFiles } from '../test/samples.ts';
import { launchChromium } from './browser.ts';
import {
  openViewer,
  requestPatient,
  shooting,
  signInAndEnrol,
  submitRequest,
  waitForStudy,
} from './viewer-app.ts';
import {
  corruptCentrePixel,
  CT_SERIES,
  startViewerFederation,
  type ViewerFederation,
} from './viewer-federation.ts';

let v: ViewerFederation;
let browser: Browser;
let work: string;
/** The 16 CT files in order of position (head first: z descending), the derived series, the single. */
let ct: string[];
let every2: string[];
let single: string[];

const z = (f: string) =>
  Number(
    parseDicom(new Uint8Array(readFileSync(f)))
      .dataset.text(T.ImagePositionPatient)!
      .split('\\')[2],
  );
const instanceNumber = (f: string) =>
  parseDicom(new Uint8Array(readFileSync(f))).dataset.number(T.InstanceNumber)!;

function derive(number: number, description: string, files: readonly string[]): string[] {
  const out = JSON.parse(
    execFileSync(
      '/usr/bin/python3',
      [join(REPO_ROOT, 'test/derive_series.py'), work, String(number), description, ...files],
      { encoding: 'utf8' },
    ),
  ) as string[];
  // Every file written is read back by DCMTK and GDCM.
  for (const f of out) {
    execFileSync('dcmdump', ['-q', f], { stdio: 'ignore' });
    execFileSync('gdcminfo', [f], { stdio: 'ignore' });
  }
  return out;
}

interface Voxel {
  file: string;
  row: number;
  column: number;
  offPlane: number;
  offCentre: number;
  value: number;
}

function pydicomVoxels(files: readonly string[], points: number[][]): Voxel[] {
  return JSON.parse(
    execFileSync(
      '/usr/bin/python3',
      [join(REPO_ROOT, 'test/pydicom_voxel.py'), JSON.stringify({ files, points })],
      { encoding: 'utf8' },
    ),
  ) as Voxel[];
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ztv-layout-'));
  const all = sampleFiles(CT_SERIES).map((f) => ({ f, z: z(f) }));
  all.sort((a, b) => b.z - a.z);
  ct = all.slice(0, 16).map((x) => x.f);
  every2 = derive(
    901,
    'CT every other slice',
    ct.filter((_, i) => i % 2 === 0),
  );
  single = derive(902, 'CT one slice', [ct[5]!]);
  v = await startViewerFederation({ ctFiles: ct, extra: [...every2, ...single] });
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await v?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function openCt(page: Page): Promise<void> {
  await signInAndEnrol(page, 'dr.bob');
  await requestPatient(page, v.ctPatient);
  await submitRequest(page, 'treatment');
  await waitForStudy(page);
}

/** The thumbnail of the series whose label contains `label`. */
const thumb = (page: Page, label: string) =>
  page.getByTestId('series-item').filter({ hasText: label });

const attr = async (page: Page, testId: string, name: string) =>
  (await page.getByTestId(testId).first().getAttribute(name)) ?? '';

/** The position (mm along the slice axis) shown in the stage (cell 0) or in another cell. */
async function position(page: Page, cell: number): Promise<number> {
  const el =
    cell === 0
      ? page.getByTestId('overlay-position')
      : page.getByTestId(`cell-${cell}`).getByTestId('cell-position');
  return Number((await el.first().getAttribute('data-value')) ?? NaN);
}

/** The window shown in a cell ("W 400 L 40"). */
async function windowOf(page: Page, cell: number): Promise<string> {
  const el =
    cell === 0
      ? page.getByTestId('overlay-wl')
      : page.getByTestId(`cell-${cell}`).getByTestId('cell-wl');
  return ((await el.first().textContent()) ?? '').split('\n')[0]!;
}

const presses = async (page: Page, key: string, n: number) => {
  for (let i = 0; i < n; i++) await page.keyboard.press(key);
};

describe('layouts', () => {
  it('2×2: series by click and drag; scroll and window synchronised by position from the active viewport, switchable; keys act on the active viewport', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'viewer-layout', async (page) => {
      await openCt(page);
      const zs = ct.map(z);
      await page.getByTestId('layout-2x2').click();
      expect(await page.getByTestId('layout-2x2').getAttribute('aria-pressed')).toBe('true');
      // The stage is active: a click on a thumbnail puts the series there.
      expect(await attr(page, 'cell-0', 'data-active')).toBe('true');
      await thumb(page, String(ct.length) + ' images').click();
      await expect.poll(() => position(page, 0)).toBe(zs[0]);
      // Cell 1 becomes active by a click and is outlined; the derived series goes there.
      await page.getByTestId('cell-1').click();
      expect(await attr(page, 'cell-1', 'data-active')).toBe('true');
      expect(await attr(page, 'cell-0', 'data-active')).toBe('false');
      const outline = await page
        .getByTestId('cell-1')
        .evaluate((e) => getComputedStyle(e, '::after').borderTopWidth);
      expect(outline).toBe('2px');
      await thumb(page, 'every other').click();
      const cell1 = page.getByTestId('cell-1');
      await expect.poll(() => cell1.getByTestId('cell-series').textContent()).toMatch(/^Se 901 /);
      // The CT again in cell 2 (same positions: N presses must be N slices there too).
      await page.getByTestId('cell-2').click();
      await thumb(page, String(ct.length) + ' images').click();
      await expect.poll(() => position(page, 2)).toBe(zs[0]);
      // The single image, dragged onto cell 3.
      await thumb(page, 'one slice').dragTo(page.getByTestId('cell-3'));
      await expect
        .poll(() => page.getByTestId('cell-3').getByTestId('cell-series').textContent())
        .toMatch(/^Se 902 /);
      await expect.poll(() => position(page, 1)).toBe(zs[0]);

      // Synchronised by default. Four arrow presses on the stage: four slices on it and on the CT
      // in cell 2, and the 2 mm series at the same position — no more (the echoes between
      // synchronised viewports once carried the stage 9 slices on).
      expect(await page.getByTestId('sync').getAttribute('aria-pressed')).toBe('true');
      await page.getByTestId('cell-0').click();
      await presses(page, 'ArrowDown', 4);
      for (const cell of [0, 2, 1]) await expect.poll(() => position(page, cell)).toBe(zs[4]);
      await page.waitForTimeout(500);
      for (const cell of [0, 2, 1]) expect(await position(page, cell)).toBe(zs[4]);
      expect(await page.getByTestId('overlay-slice').textContent()).toBe('Im 5 / 16');
      // One more: the 2 mm series has no slice there, it shows the nearest (1 mm off).
      await presses(page, 'ArrowDown', 1);
      await expect.poll(() => position(page, 2)).toBe(zs[5]);
      await expect
        .poll(async () => Math.abs((await position(page, 1)) - zs[5]!))
        .toBeLessThanOrEqual(1.0001);
      expect(await position(page, 0)).toBe(zs[5]);

      // The wheel on cell 1 makes it the active viewport, and it drives: two of its slices (4 mm)
      // on, the stage and cell 2 are at its position.
      const box = (await cell1.boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      const from = zs.indexOf(await position(page, 1));
      expect(from).toBeGreaterThanOrEqual(4);
      await page.mouse.wheel(0, 100);
      await expect.poll(() => position(page, 1)).toBe(zs[from + 2]);
      await page.mouse.wheel(0, 100);
      await expect.poll(() => position(page, 1)).toBe(zs[from + 4]);
      expect(await attr(page, 'cell-1', 'data-active')).toBe('true');
      for (const cell of [0, 2]) await expect.poll(() => position(page, cell)).toBe(zs[from + 4]);

      // Window/level: the lung preset on the active cell reaches every viewport of the frame of
      // reference; the bone key (4) on cell 2, made active, reaches the stage and cell 1.
      await page.getByTestId('preset-lung').click();
      for (const cell of [1, 0, 2, 3])
        await expect.poll(() => windowOf(page, cell)).toBe('W 1500 L -600');
      await page.getByTestId('cell-2').click();
      await page.keyboard.press('4');
      for (const cell of [2, 0, 1])
        await expect.poll(() => windowOf(page, cell)).toBe('W 2500 L 480');
      // Home on the active cell 2: its first slice, the others follow.
      await page.keyboard.press('Home');
      for (const cell of [2, 0, 1]) await expect.poll(() => position(page, cell)).toBe(zs[0]);
      expect(await page.getByTestId('cell-2').getByTestId('cell-slice').textContent()).toBe(
        'Im 1 / 16',
      );

      // Sync off: the keys move and window the active cell 1 alone.
      await page.getByTestId('sync').click();
      expect(await page.getByTestId('sync').getAttribute('aria-pressed')).toBe('false');
      await page.getByTestId('cell-1').click();
      await presses(page, 'ArrowDown', 2);
      await page.keyboard.press('2');
      await expect.poll(() => position(page, 1)).toBe(zs[4]);
      await expect.poll(() => windowOf(page, 1)).toBe('W 1500 L -600');
      await page.waitForTimeout(500);
      for (const cell of [0, 2]) {
        expect(await position(page, cell)).toBe(zs[0]);
        expect(await windowOf(page, cell)).toBe('W 2500 L 480');
      }
      // … and the stage alone once it is active.
      await page.getByTestId('cell-0').click();
      await presses(page, 'ArrowDown', 3);
      await expect.poll(() => position(page, 0)).toBe(zs[3]);
      await page.waitForTimeout(500);
      expect(await position(page, 1)).toBe(zs[4]);
      expect(await position(page, 2)).toBe(zs[0]);
      expect(vp.errors).toEqual([]);
    });
  }, 300_000);
});

/** Moves the pointer to a fraction of a view and returns what the readout says there. */
async function probeAt(page: Page, view: 'sagittal' | 'coronal', fx: number, fy: number) {
  const el = page.getByTestId(`mpr-viewport-${view}`);
  const box = (await el.boundingBox())!;
  await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy);
  const out = page.getByTestId(`mpr-probe-${view}`);
  await expect.poll(() => out.getAttribute('data-world')).not.toBe('');
  return {
    world: ((await out.getAttribute('data-world')) ?? '').split(',').map(Number),
    value: Number(await out.getAttribute('data-value')),
  };
}

describe('MPR', () => {
  it('sagittal and coronal voxels equal the originals (pydicom); a single image is refused', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'viewer-mpr', async (page) => {
      await openCt(page);
      await thumb(page, String(ct.length) + ' images').click();
      await page.getByTestId('mpr').click();
      await page.locator('.mpr-grid[data-ready=true]').waitFor({ timeout: 60_000 });
      expect(await page.getByTestId('mpr-badge').textContent()).toBe('Verified — all 16 slices');
      expect(await attr(page, 'mpr-badge', 'data-state')).toBe('verified');
      const points: number[][] = [];
      const values: number[] = [];
      for (const [view, fx, fy] of [
        ['sagittal', 0.42, 0.5],
        ['sagittal', 0.6, 0.5],
        ['coronal', 0.35, 0.5],
        ['coronal', 0.55, 0.5],
      ] as const) {
        const p = await probeAt(page, view, fx, fy);
        points.push(p.world);
        values.push(p.value);
      }
      const truth = pydicomVoxels(ct, points);
      for (const [i, t] of truth.entries()) {
        // The readout names a voxel centre of an original slice.
        expect(t.offPlane).toBeLessThan(0.01);
        expect(t.offCentre).toBeLessThan(0.01);
        expect(values[i]).toBe(t.value);
      }
      // The views are drawn: the sagittal and coronal canvases hold a picture, not a blank.
      for (const view of ['sagittal', 'coronal'])
        expect(
          await page.getByTestId(`mpr-viewport-${view}`).evaluate((el) => {
            const c = el.querySelector('canvas')!;
            const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
            const greys = new Set<number>();
            for (let i = 0; i < d.length; i += 4) greys.add(d[i]!);
            return greys.size;
          }),
        ).toBeGreaterThan(20);
      // Not all the same voxel, nor all air.
      expect(new Set(truth.map((t) => `${t.file}:${t.row}:${t.column}`)).size).toBe(4);
      expect(new Set(values).size).toBeGreaterThan(1);

      await page.getByTestId('mpr-close').click();
      await thumb(page, 'one slice').click();
      await page.getByTestId('mpr').click();
      await expect
        .poll(() => page.getByTestId('mpr-refusal').textContent())
        .toBe(
          'No MPR for this series. This series is a single image: a volume needs a stack of slices.',
        );
      expect(vp.errors).toEqual([]);
    });
  }, 300_000);

  it('names the tampered slice in the MPR badge', async () => {
    // One bit of the stored CT slice 6 (by position) flipped at the cloud, found through the
    // producer's record of where it outsourced that instance.
    const sop = parseDicom(new Uint8Array(readFileSync(ct[5]!))).dataset.text(T.SOPInstanceUID)!;
    const db = new Database(join(v.dir, 'producer', 'producer.sqlite'), { readonly: true });
    const row = db.prepare('SELECT cloud_id FROM instances WHERE sop_uid = ?').get(sop) as
      { cloud_id: string } | undefined;
    db.close();
    expect(row?.cloud_id).toBeTruthy();
    const id = row!.cloud_id;
    const victim = join(v.dir, 'cloud', 'blobs', id.slice(0, 2).padEnd(2, '_'), id);
    // Bit 8 of the centre sample: the slice still restores.
    const good = corruptCentrePixel(victim, 0x01);
    const vp = await openViewer(browser, v.url);
    try {
      await shooting(vp, 'viewer-mpr-tampered', async (page) => {
        await openCt(page);
        await thumb(page, String(ct.length) + ' images').click();
        await page.getByTestId('mpr').click();
        await page.locator('.mpr-grid[data-ready=true]').waitFor({ timeout: 60_000 });
        expect(await attr(page, 'mpr-badge', 'data-state')).toBe('tampered');
        expect(await page.getByTestId('mpr-badge').textContent()).toBe(
          `Tampered — tampered: slice 6 (instance ${instanceNumber(ct[5]!)})`,
        );
      });
    } finally {
      writeFileSync(victim, good);
    }
  }, 300_000);
});
