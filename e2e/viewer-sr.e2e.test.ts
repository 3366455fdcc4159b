// The measurements exported as a DICOM SR (TID 1500), in Debian's Chromium against a real federation
// (5 CT slices): measurements drawn on two slices are saved as a file in the browser (a download, no
// request), and that file parses with pydicom (test/pydicom_sr.py), DCMTK's dsrdump and GDCM's
// gdcminfo, and dicom3tools' dciodvfy, names the instances measured by their SOP
// Instance UIDs (read from the original files) and carries the values the panel shows.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
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
import { startViewerFederation, type ViewerFederation } from './viewer-federation.ts';

let v: ViewerFederation;
let browser: Browser;
let dir: string;
/** Instance number → the original file's SOP Instance UID and Pixel Spacing. */
const byNumber = new Map<number, { uid: string; spacing: [number, number] }>();

interface SrGroup {
  refs: { class: string; instance: string; frames: number[] }[];
  values: { name: string; value: number; unit: string }[];
  texts: { name: string; value: string }[];
  graphics: string[];
}
interface Sr {
  sopClass: string;
  modality: string;
  title: string;
  template: string;
  patientId: string;
  studyUid: string;
  groups: SrGroup[];
}

const rows = measurementRows;
const statsOf = measurementStats;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-sr-'));
  v = await startViewerFederation({ slices: 5 });
  for (const f of v.ct) {
    const ds = parseDicom(new Uint8Array(readFileSync(f))).dataset;
    const spacing = (ds.text(T.PixelSpacing) ?? '').split('\\').map(Number) as [number, number];
    byNumber.set(ds.number(T.InstanceNumber) ?? -1, {
      uid: ds.text(T.SOPInstanceUID) ?? '',
      spacing,
    });
  }
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await v?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('measurements as a DICOM SR', () => {
  it('exports a TID 1500 report that pydicom, dsrdump and gdcminfo read, naming the measured instances', async () => {
    const vp = await openViewer(browser, v.url);
    let file = '';
    const drawn: { number: number; kind: string; stats: Record<string, unknown> }[] = [];
    await shooting(vp, 'sr-export', async (page) => {
      await signInAndEnrol(page, 'dr.bob');
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      await waitForStudy(page);
      await page.getByTestId('panel-measurements').click();
      await sizeViewport(page);
      await page.getByTestId('reset').click();
      // Nothing to export yet.
      expect(await page.getByTestId('measure-export-sr').isDisabled()).toBe(true);

      // A length on the first slice, renamed; an ellipse ROI on the next one.
      const first = await instanceShown(page);
      await page.getByTestId('tool-length').click();
      await drag(page, [100, 100], [300, 250]);
      await expect.poll(() => rows(page).count()).toBe(1);
      const [rs, cs] = byNumber.get(first)!.spacing;
      const expected = Math.hypot(200 * cs, 150 * rs);
      await expect
        .poll(async () => Math.abs(((await statsOf(page, 0)).length as number) - expected))
        .toBeLessThan(0.5);
      drawn.push({ number: first, kind: 'length', stats: await statsOf(page, 0) });
      await rows(page).nth(0).getByTestId('measure-name').fill('nodule long axis');
      await rows(page).nth(0).getByTestId('measure-name').press('Enter');

      await page.getByTestId('viewport').focus();
      await page.keyboard.press('ArrowDown');
      await expect.poll(() => instanceShown(page)).not.toBe(first);
      const second = await instanceShown(page);
      await page.getByTestId('tool-ellipse').click();
      await drag(page, [160, 280], [190, 300]);
      await expect.poll(() => rows(page).count()).toBe(2);
      await expect.poll(async () => typeof (await statsOf(page, 1)).mean).toBe('number');
      drawn.push({ number: second, kind: 'ellipse', stats: await statsOf(page, 1) });
      // The panel follows the drag: the values compared with the SR are those it shows once the
      // last drawing settled (the same on two reads 0.5 s apart), read just before the export.
      for (const [i, d] of drawn.entries()) {
        let last = '';
        await expect
          .poll(
            async () => {
              const now = JSON.stringify(await statsOf(page, i));
              const same = now === last;
              last = now;
              return same;
            },
            { interval: 500 },
          )
          .toBe(true);
        d.stats = JSON.parse(last) as Record<string, unknown>;
      }

      // The export is a download made in the page: nothing is sent (the only requests are the
      // viewer's own code for the SR, loaded on first use).
      const requests: string[] = [];
      page.on('request', (r) => {
        const u = new URL(r.url());
        if (u.protocol === 'blob:' || u.protocol === 'data:') return;
        if (
          r.method() === 'GET' &&
          u.origin === new URL(v.url).origin &&
          /^\/assets\/[\w.-]+\.js$/.test(u.pathname)
        )
          return;
        requests.push(`${r.method()} ${r.url()}`);
      });
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByTestId('measure-export-sr').click(),
      ]);
      expect(download.suggestedFilename()).toMatch(/^ztv-measurements-\d{8}-\d{6}\.dcm$/);
      file = join(dir, download.suggestedFilename());
      await download.saveAs(file);
      expect(requests).toEqual([]);
      const note = (await page.getByTestId('sr-note').textContent()) ?? '';
      expect(note).toContain('2 measurements on 2 images');
      expect(note).toContain('sent nowhere');
      expect(note).toContain('not encrypted');
    });

    // pydicom: a TID 1500 Measurement Report naming both instances, with the panel's values.
    const sr = JSON.parse(
      execFileSync('/usr/bin/python3', [join(REPO_ROOT, 'test/pydicom_sr.py'), file], {
        encoding: 'utf8',
      }),
    ) as Sr;
    expect(sr.modality).toBe('SR');
    expect(sr.template).toBe('1500');
    expect(sr.title).toBe('Imaging Measurement Report');
    expect(sr.patientId).toBe(v.ctPatient);
    expect(sr.groups).toHaveLength(2);
    const ctImage = '1.2.840.10008.5.1.4.1.1.2';
    for (const d of drawn) {
      const uid = byNumber.get(d.number)!.uid;
      const g = sr.groups.find((x) => x.refs.some((r) => r.instance === uid));
      expect(g, `a group naming instance ${d.number}`).toBeDefined();
      expect(g!.refs.every((r) => r.instance === uid && r.class === ctImage)).toBe(true);
      if (d.kind === 'length') {
        const len = g!.values.find((x) => x.name === 'Length')!;
        expect(len.unit).toBe('mm');
        expect(Math.abs(len.value - (d.stats.length as number))).toBeLessThan(0.01);
        expect(g!.texts.some((t) => t.value === 'nodule long axis')).toBe(true);
        expect(g!.graphics).toContain('POLYLINE');
      } else {
        const mean = g!.values.find((x) => x.name === 'Mean')!;
        expect(mean.unit).toBe("[hnsf'U]");
        expect(Math.abs(mean.value - (d.stats.mean as number))).toBeLessThan(0.01);
        const area = g!.values.find((x) => x.name === 'Area')!;
        expect(area.unit).toBe('mm2');
        expect(Math.abs(area.value - (d.stats.area as number))).toBeLessThan(0.01);
        expect(g!.graphics).toContain('ELLIPSE');
      }
    }

    // DCMTK reads it as a structured report and lists the referenced instances.
    const dump = spawnSync('dsrdump', ['-Ee', '+Pu', file], { encoding: 'utf8' });
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stdout).toContain('Imaging Measurement Report');
    for (const d of drawn) expect(dump.stdout).toContain(byNumber.get(d.number)!.uid);
    expect(dump.stderr).not.toMatch(/error/i);

    // GDCM parses it.
    const gdcm = spawnSync('gdcminfo', [file], { encoding: 'utf8' });
    expect(gdcm.status, gdcm.stderr).toBe(0);
    expect(gdcm.stdout).toContain('MediaStorage is 1.2.840.10008.5.1.4.1.1.88');

    // dicom3tools' IOD checker (installed by scripts/system.sh): no error.
    const iod = spawnSync('dciodvfy', ['-new', file], { encoding: 'utf8' });
    expect(iod.error).toBeUndefined();
    expect(`${iod.stdout}${iod.stderr}`).not.toMatch(/^Error/m);
  }, 300_000);
});
