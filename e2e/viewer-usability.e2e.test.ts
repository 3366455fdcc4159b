// The viewer's usability fixes end to end, in Debian's Chromium against a real federation (four
// processes, a few CT slices outsourced, the viewer built with the federation's root pinned): a
// refusal names the purposes the clinician may ask for, and a second refusal replaces the first with
// its own words; a nurse (whom the policy lets search nothing) gets a neutral patient-ID form, an
// auditor no Studies tab; the study list narrows by patient ID or name; the tag browser gives each
// element its line (tag, VR, keyword, value; group lengths named); export says what the file is; an
// emergency access stays marked while its study is open. Failures leave screenshots.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './browser.ts';
import {
  openViewer,
  requestPatient,
  screenshot,
  signIn,
  signInAndEnrol,
  submitRequest,
  waitForStudy,
  type ViewerPage,
} from './viewer-app.ts';
import { startViewerFederation, type ViewerFederation } from './viewer-federation.ts';

let v: ViewerFederation;
let browser: Browser;

/** Runs a test body in a fresh browser context; on failure, a screenshot goes to test-results/. */
async function shooting(name: string, body: (vp: ViewerPage) => Promise<void>) {
  const vp = await openViewer(browser, v.url);
  try {
    await body(vp);
  } catch (e) {
    console.error(`screenshot: ${await screenshot(vp.page, name)}`);
    throw e;
  } finally {
    await vp.context.close();
  }
}

beforeAll(async () => {
  v = await startViewerFederation({ slices: 3 });
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await v?.close();
});

describe('the viewer’s usability, end to end', () => {
  it('a refusal names the purposes that may be asked for; the next attempt replaces it', async () => {
    await shooting('usability-refusal', async ({ page, errors }) => {
      // A radiologist with no treatment relationship: research is what the policy allows her.
      await signInAndEnrol(page, 'dr.alice');
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      const dialog = page.getByRole('dialog', { name: 'Request access' });
      const problem = dialog.getByTestId('problem');
      await problem.waitFor();
      expect(await problem.locator('strong').textContent()).toBe(
        "Request 1 (Treatment) refused by the producer hospital's policy",
      );
      const first = (await problem.locator('span').textContent()) ?? '';
      expect(first).toMatch(/^consultation denied: .+\. You may ask for: Research\.$/);
      expect(first).not.toMatch(/purposes of use the policy allows/);
      // The allowed purpose is one click away.
      await problem.getByRole('button', { name: 'Ask for Research' }).waitFor();

      // Breaking the glass is for physicians: refused again, and the new refusal replaces the old.
      await dialog.locator('input[name=purpose][value=emergency]').check();
      await dialog
        .locator('#justification')
        .fill('Unconscious patient in the emergency room, trauma CT');
      await dialog.getByRole('button', { name: 'Break the glass' }).click();
      await expect
        .poll(() => problem.locator('strong').textContent())
        .toBe("Request 2 (Emergency (break the glass)) refused by the producer hospital's policy");
      expect(await dialog.getByTestId('problem').count()).toBe(1);
      expect(await problem.locator('span').textContent()).toMatch(/You may ask for: Research\.$/);
      await problem.getByRole('button', { name: 'Ask for Research' }).click();
      expect(await dialog.locator('input[name=purpose][value=research]').isChecked()).toBe(true);
      expect(errors).toEqual([]);
    });
  });

  it('a nurse gets a neutral patient-ID form, not a search error', async () => {
    await shooting('usability-nurse', async ({ page, errors }) => {
      await signInAndEnrol(page, 'nurse.carol');
      const form = page.getByTestId('patient-id-only');
      expect(await form.getByRole('heading').first().textContent()).toBe(
        "Open a patient's studies",
      );
      expect(await page.getByRole('alert').count()).toBe(0);
      expect(await page.getByTestId('problem').count()).toBe(0);
      // The form works: it asks the producer, whose policy decides.
      await requestPatient(page, v.ctPatient);
      expect(errors).toEqual([]);
    });
  });

  it('an auditor has no Studies tab', async () => {
    await shooting('usability-auditor', async ({ page }) => {
      await signIn(page, 'auditor.dave');
      await page.getByRole('button', { name: 'Enrol this device' }).click();
      await page.getByTestId('leak-drop').waitFor({ timeout: 60_000 });
      expect(await page.getByTestId('tab-audit').count()).toBe(1);
      expect(await page.getByTestId('tab-studies').count()).toBe(0);
      expect(await page.getByTestId('study-list').count()).toBe(0);
      expect(await page.getByTestId('problem').count()).toBe(0);
    });
  });

  it('the study list narrows by patient ID or name', async () => {
    await shooting('usability-search', async ({ page }) => {
      await signInAndEnrol(page, 'dr.bob');
      const rows = page.getByTestId('study-row');
      await expect.poll(() => rows.count()).toBe(1);
      const search = page.getByTestId('study-search');
      await search.fill(v.ctPatient.slice(-4).toLowerCase());
      await expect.poll(() => rows.count()).toBe(1);
      await search.fill('no such patient');
      await expect.poll(() => rows.count()).toBe(0);
      await page.getByTestId('no-match').waitFor();
      expect(await page.getByTestId('study-count').textContent()).toBe('0 of 1 studies');
      await search.fill('');
      await expect.poll(() => rows.count()).toBe(1);
    });
  });

  it('the tag browser gives each element a line of its own; export says what the file is', async () => {
    await shooting('usability-tags-export', async ({ page, errors }) => {
      await signInAndEnrol(page, 'dr.bob');
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      await waitForStudy(page);
      await page.getByTestId('panel-tags').click();
      const browser = page.getByTestId('tag-browser');
      expect(await browser.locator('thead th').allTextContents()).toEqual([
        'Tag',
        'VR',
        'Keyword',
        'Value',
      ]);
      // A group length is named, in its own row of four cells.
      const group = browser.locator('tr[data-tag="(0008,0000)"] td');
      expect((await group.allTextContents()).slice(0, 3)).toEqual([
        '(0008,0000)',
        'UL',
        'GenericGroupLength',
      ]);
      // Every tag and VR is written whole on one line, a keyword such as this one too, and no row
      // is wider than the panel (a long value wraps in its own column).
      const layout = await browser.evaluate((el) => {
        const lines = (c: Element) => {
          const r = document.createRange();
          r.selectNodeContents(c);
          return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size;
        };
        const table = el.querySelector('table')!;
        const rows = [...el.querySelectorAll('tbody tr')];
        const cell = (r: Element, i: number) => r.children[i]!;
        return {
          rows: rows.length,
          tags: rows.map((r) => cell(r, 0).textContent),
          multiline: rows.filter((r) => lines(cell(r, 0)) > 1 || lines(cell(r, 1)) > 1).length,
          clipped: rows.filter((r) => cell(r, 0).scrollWidth > cell(r, 0).clientWidth).length,
          groupLengthLines: lines(el.querySelector('tr[data-tag="(0008,0000)"]')!.children[2]!),
          overflow: table.scrollWidth - el.clientWidth,
        };
      });
      expect(layout.rows).toBeGreaterThan(30);
      expect(layout.tags.every((t) => /^\([0-9A-F]{4},[0-9A-F]{4}\)$/.test(t ?? ''))).toBe(true);
      expect(layout.multiline).toBe(0);
      expect(layout.clipped).toBe(0);
      expect(layout.groupLengthLines).toBe(1);
      expect(layout.overflow).toBeLessThanOrEqual(1);

      // Export: the download, then what it is.
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByTestId('export').click(),
      ]);
      const note = page.getByTestId('export-note');
      await note.waitFor();
      const said = (await note.textContent()) ?? '';
      expect(said).toContain(download.suggestedFilename());
      expect(said).toMatch(/still encrypted/);
      expect(said).toMatch(/opens only with this federation's keys/);
      expect(said).toMatch(/if the file leaks, an auditor's trace of it names you/);
      await note.getByRole('button', { name: 'OK' }).click();
      expect(await note.count()).toBe(0);
      expect(errors).toEqual([]);
    });
  });

  it('an emergency access is marked for as long as its study is open', async () => {
    await shooting('usability-break-glass', async ({ page }) => {
      const why = 'Unconscious patient in the emergency room, trauma CT needed';
      await signInAndEnrol(page, 'dr.bob');
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'emergency', why);
      await waitForStudy(page);
      const marker = page.getByTestId('break-glass-marker');
      expect(await marker.textContent()).toMatch(/^Emergency access \(break the glass\)/);
      expect(await page.getByTestId('break-glass-justification').textContent()).toContain(why);
      expect(await page.getByTestId('tab-viewer').textContent()).toBe('Viewer · Emergency access');
      // Still marked after a visit to the study list.
      await page.getByTestId('tab-studies').click();
      await page.getByTestId('tab-viewer').click();
      expect(await marker.isVisible()).toBe(true);
      // Closed: the mark goes with the study; a treatment access is not marked.
      await page.getByRole('button', { name: 'Close study' }).click();
      await expect.poll(() => marker.count()).toBe(0);
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      await waitForStudy(page);
      expect(await marker.count()).toBe(0);
      expect(await page.getByTestId('tab-viewer').textContent()).toBe('Viewer');
    });
  });
});
