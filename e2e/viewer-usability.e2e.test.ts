// The viewer's usability fixes end to end, in Debian's Chromium against a real federation (four
// processes, a few CT slices outsourced, the viewer built with the federation's root pinned): a
// refusal names the purposes the clinician may ask for, and a second refusal replaces the first with
// its own words; a nurse (whom the policy lets search nothing) gets a neutral patient-ID form, an
// auditor no Studies tab; the study list narrows by patient ID or name through the producer's QIDO-RS; the tag browser gives each
// element its line (tag, VR, keyword, value; group lengths named); export says what the file is; an
// emergency access stays marked while its study is open; a research consultation (issue 16 §4) shows
// verified pixels and no patient identifier — in the page, the workers' answers or the exported file —
// while a treatment consultation restores them. Failures leave screenshots.
import SQLite from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
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
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(1);
      const search = page.getByTestId('study-search');
      await search.fill(v.ctPatient.slice(-4).toLowerCase());
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(1);
      await search.fill('no such patient');
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(0);
      await page.getByTestId('no-match').waitFor({ timeout: 30_000 });
      expect(await page.getByTestId('study-count').textContent()).toBe('0 of 1 studies');
      await search.fill('');
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(1);
      // The box asked the producer's QIDO-RS (logged by the keys used, never the text typed).
      const db = new SQLite(join(v.fed.config.dataDir, 'producer/producer.sqlite'), {
        readonly: true,
      });
      try {
        const asked = db
          .prepare("select details from audit_records where subtype = 'request-logged'")
          .all() as { details: string }[];
        const qidos = asked.map((r) => JSON.parse(r.details) as Record<string, unknown>);
        const matching = qidos.filter((d) => d.operation === 'qido').map((d) => d.matching);
        expect(matching).toContainEqual(['PatientID']);
        expect(matching).toContainEqual(['PatientName']);
        expect(asked.map((r) => r.details).join('')).not.toContain('no such patient');
      } finally {
        db.close();
      }
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
  it('research shows verified pixels without the identity, in the page, the workers’ answers and the export; treatment restores it', async () => {
    const source = parseDicom(new Uint8Array(readFileSync(v.ct[0]!))).dataset;
    // The CT names its patient by ID (its name is empty), its Accession Number (0008,0050) and its
    // Study Instance UID (0020,000D).
    const identifiers = [v.ctPatient, source.text(0x00080050)!, source.text(0x0020000d)!];
    expect(identifiers.every((i) => i.length >= 8)).toBe(true);
    const found = (text: string) => identifiers.filter((i) => text.includes(i));

    /** Signs in, opens the CT study for `purpose`, and reads the page, answers and export. */
    const consult = async (vp: ViewerPage, user: string, purpose: 'research' | 'treatment') => {
      const { page } = vp;
      // Every message a decode worker posts to the page, kept as JSON (pixel buffers left out).
      await vp.context.addInitScript(() => {
        const kept: string[] = [];
        (window as unknown as { ztvAnswers: string[] }).ztvAnswers = kept;
        const Base = window.Worker;
        window.Worker = class extends Base {
          constructor(url: string | URL, options?: WorkerOptions) {
            super(url, options);
            this.addEventListener('message', (e: MessageEvent) => {
              kept.push(
                JSON.stringify(e.data, (_k, x: unknown) =>
                  x instanceof ArrayBuffer || ArrayBuffer.isView(x) ? undefined : x,
                ),
              );
            });
          }
        };
      });
      await page.reload();
      await signInAndEnrol(page, user);
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, purpose);
      await waitForStudy(page);
      await page.getByTestId('panel-tags').click();
      await page.getByTestId('tag-browser').waitFor();
      const answers = await page.evaluate(() =>
        (window as unknown as { ztvAnswers: string[] }).ztvAnswers.filter((a) =>
          a.includes('"kind":"opened"'),
        ),
      );
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByTestId('export').click(),
      ]);
      const exported = (await download.path())!;
      return {
        badge: (await page.getByTestId('integrity-badge').textContent()) ?? '',
        overlay: (await page.getByTestId('overlay-patient').textContent()) ?? '',
        html: await page.content(),
        text: await page.evaluate(() => document.body.innerText),
        answers,
        exported,
      };
    };

    await shooting('disclosure-research', async (vp) => {
      const r = await consult(vp, 'dr.alice', 'research');
      expect(r.badge).toBe('Verified — pseudonymised');
      expect(r.overlay).toContain('Pseudonymised for research');
      expect(r.answers).toHaveLength(v.ct.length);
      for (const a of r.answers) {
        expect(a).toContain('"disclosure":"pseudonymised"');
        expect(a).toContain('"status":"verified"');
      }
      expect(found(r.html)).toEqual([]);
      expect(found(r.text)).toEqual([]);
      expect(found(r.answers.join('\n'))).toEqual([]);
      // The export is the served file: valid DICOM for DCMTK and GDCM, no identifier in it.
      const bytes = readFileSync(r.exported);
      expect(identifiers.filter((i) => bytes.includes(Buffer.from(i)))).toEqual([]);
      const dump = spawnSync('dcmdump', ['-q', r.exported], { encoding: 'utf8' });
      expect(dump.status).toBe(0);
      expect(dump.stderr + dump.stdout).not.toMatch(/^[WEF]:/m);
      const info = spawnSync('gdcminfo', ['-W', '-E', '-i', r.exported], { encoding: 'utf8' });
      expect(info.status).toBe(0);
      expect(info.stderr).toBe('');
      expect(vp.errors).toEqual([]);
    });

    await shooting('disclosure-treatment', async (vp) => {
      const r = await consult(vp, 'dr.bob', 'treatment');
      expect(r.badge).toBe('Verified');
      expect(r.overlay).toContain(v.ctPatient);
      for (const a of r.answers) expect(a).toContain('"disclosure":"identified"');
      expect(found(r.answers.join('\n'))).toEqual(expect.arrayContaining(identifiers.slice(0, 2)));
      expect(found(r.text)).toContain(v.ctPatient);
      expect(vp.errors).toEqual([]);
    });
  });
});
