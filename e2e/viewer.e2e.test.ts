// The viewer end to end, in Debian's Chromium against a real federation (four processes, the whole
// 150-slice CT series outsourced, the viewer built with the federation's root pinned): a clinician
// signs in, enrols the browser, opens the series — every image Verified, the canvas equal to a
// reference rendering of the original file at the same window, scrolling and window/level followed,
// tags, auditor view and the traced export; an instance corrupted at the cloud shows as Tampered with
// its tile drawn; a ticket that expires before redemption, and a policy denial, say so. A failing
// test leaves a screenshot in test-results/.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import { inspectProtected } from '../src/core/protect/inspect.ts';
import { launchChromium } from './browser.ts';
import {
  canvasGrey,
  openViewer,
  requestPatient,
  screenshot,
  signInAndEnrol,
  sizeViewport,
  submitRequest,
  waitForStudy,
  type ViewerPage,
} from './viewer-app.ts';
import { startViewerFederation, type ViewerFederation } from './viewer-federation.ts';

let v: ViewerFederation;
let browser: Browser;

/** Instance number → original file, read independently of the viewer. */
const byNumber = new Map<number, string>();

/** Reference grey levels of an original file at (center, width): PS3.3 C.11.2.1.2 linear VOI. */
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

function compare(canvas: { w: number; h: number; grey: Uint8Array }, ref: Uint8Array) {
  expect([canvas.w, canvas.h]).toEqual([512, 512]);
  let sum = 0;
  let ok = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(canvas.grey[i]! - ref[i]!);
    sum += d;
    if (d <= 3) ok++;
  }
  return { mean: sum / ref.length, within3: ok / ref.length };
}

/**
 * The canvas once it shows `ref` (renders follow input asynchronously; on a loaded machine they can
 * lag): polled until at least `min` of its pixels are within 3 grey levels, or a timeout that fails.
 */
async function drawn(page: Page, ref: Uint8Array, min = 0.99) {
  const until = Date.now() + 15_000;
  for (;;) {
    const canvas = await canvasGrey(page);
    const c = { canvas, ...compare(canvas, ref) };
    if (c.within3 >= min || Date.now() > until) return c;
    await page.waitForTimeout(100);
  }
}

const text = async (page: Page, testId: string): Promise<string> =>
  (await page.getByTestId(testId).first().textContent())?.trim() ?? '';

/** The window on screen, as the overlay prints it ("W 1500 L -600"). */
async function windowShown(page: Page): Promise<{ width: number; center: number }> {
  const m = /W (-?\d+) L (-?\d+)/.exec(await text(page, 'overlay-wl'));
  if (!m) throw new Error('no window in the overlay');
  return { width: Number(m[1]), center: Number(m[2]) };
}

async function instanceShown(page: Page): Promise<number> {
  const m = /Instance (\d+)/.exec(await text(page, 'overlay-instance'));
  if (!m) throw new Error('no instance number in the overlay');
  return Number(m[1]);
}

/** The slice's position along the axis its series steps along (z for this axial CT), in mm. */
async function zShown(page: Page): Promise<number> {
  return Number(await page.getByTestId('overlay-position').first().getAttribute('data-value'));
}

/** Waits until the overlay says slice `n` and that slice's badge is settled. */
async function waitSlice(page: Page, n: number): Promise<void> {
  await page.waitForFunction(
    (want) =>
      document.querySelector('[data-testid=overlay-slice]')?.textContent?.startsWith(`Im ${want} `),
    n,
  );
}

/** Runs a test body; on failure, a screenshot of the page goes to test-results/. */
async function shooting(vp: ViewerPage | undefined, name: string, body: () => Promise<void>) {
  try {
    await body();
  } catch (e) {
    if (vp) console.error(`screenshot: ${await screenshot(vp.page, name)}`);
    throw e;
  } finally {
    await vp?.context.close();
  }
}

beforeAll(async () => {
  v = await startViewerFederation();
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

describe('the viewer, end to end', () => {
  it('opens the real CT series verified, draws the original, scrolls, windows, browses, exports the traced instance', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'viewer-verified', async () => {
      const { page } = vp;
      await signInAndEnrol(page, 'dr.bob');
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      await waitForStudy(page);

      // Every image verified, and the one on screen says so.
      expect(await text(page, 'series-badge')).toBe('Verified — 150 of 150 images');
      expect(await text(page, 'integrity-badge')).toMatch(/^Verified/);
      // The patient as the encrypted attributes restore it: the cloud's copies do not carry it.
      expect(await text(page, 'overlay-patient')).toContain(v.ctPatient);
      const blobs = readdirSync(join(v.dir, 'cloud', 'blobs'), {
        recursive: true,
        withFileTypes: true,
      })
        .filter((d) => d.isFile() && !d.name.startsWith('.'))
        .map((d) => join(d.parentPath, d.name));
      expect(blobs.length).toBe(150);
      expect(readFileSync(blobs[0]!).includes(Buffer.from(v.ctPatient))).toBe(false);

      // The canvas maps the slice 1:1: the first slice at lung window is the original's rendering.
      await sizeViewport(page);
      await page.getByTestId('reset').click();
      await page.keyboard.press('Home');
      await waitSlice(page, 1);
      await page.getByTestId('preset-lung').click();
      await expect.poll(() => windowShown(page)).toEqual({ width: 1500, center: -600 });
      const first = await instanceShown(page);
      const lung = await drawn(page, reference(byNumber.get(first)!, -600, 1500));
      expect(lung.mean).toBeLessThan(1.5);
      expect(lung.within3).toBeGreaterThan(0.99);

      // Slices run by position, from the head down: down the stack z falls, End is the last.
      const z1 = await zShown(page);
      await page.keyboard.press('ArrowDown');
      await waitSlice(page, 2);
      expect(await zShown(page)).toBeLessThan(z1);
      await page.keyboard.press('End');
      await waitSlice(page, 150);
      expect(await zShown(page)).toBeLessThan(z1);
      await page.keyboard.press('Home');
      await waitSlice(page, 1);

      // The wheel scrolls: another slice, drawn as its own original.
      const box = (await page.getByTestId('viewport').boundingBox())!;
      await page.mouse.move(box.x + 256, box.y + 256);
      for (let i = 0; i < 40; i++) await page.mouse.wheel(0, 100);
      await waitSlice(page, 41);
      const other = await instanceShown(page);
      expect(other).not.toBe(first);
      const scrolled = await drawn(page, reference(byNumber.get(other)!, -600, 1500));
      expect(scrolled.within3).toBeGreaterThan(0.99);
      // …and not the first slice any more.
      expect(
        compare(scrolled.canvas, reference(byNumber.get(first)!, -600, 1500)).within3,
      ).toBeLessThan(0.9);

      // Soft-tissue preset, then a window/level drag: the picture follows the window shown.
      await page.getByTestId('preset-soft').click();
      await expect.poll(() => windowShown(page)).toEqual({ width: 400, center: 40 });
      const soft = await drawn(page, reference(byNumber.get(other)!, 40, 400));
      expect(soft.within3).toBeGreaterThan(0.99);
      expect(
        compare(soft.canvas, reference(byNumber.get(other)!, -600, 1500)).within3,
      ).toBeLessThan(0.5);
      await page.mouse.move(box.x + 200, box.y + 200);
      await page.mouse.down();
      await page.mouse.move(box.x + 260, box.y + 230, { steps: 6 });
      await page.mouse.up();
      await expect.poll(async () => (await windowShown(page)).width).toBeGreaterThan(400);
      const dragged = await windowShown(page);
      expect(dragged.center).toBeGreaterThan(40);
      // The overlay rounds the window to whole units: a grey level or so of difference at most.
      const after = await drawn(
        page,
        reference(byNumber.get(other)!, dragged.center, dragged.width),
        0.98,
      );
      expect(after.within3).toBeGreaterThan(0.98);
      expect(compare(after.canvas, reference(byNumber.get(other)!, 40, 400)).within3).toBeLessThan(
        0.95,
      );

      // Invert draws the complement; zoom and pan move the picture; Reset brings it back.
      const softRef = reference(byNumber.get(other)!, 40, 400);
      await page.getByTestId('preset-soft').click();
      await drawn(page, softRef);
      await page.keyboard.press('i');
      const inverted = await drawn(
        page,
        softRef.map((g) => 255 - g),
        0.98,
      );
      expect(inverted.within3).toBeGreaterThan(0.98);
      await page.keyboard.press('i');
      await drawn(page, softRef);
      // Cornerstone's zoom tool: dragging down magnifies.
      await page.getByTestId('tool-zoom').click();
      await page.mouse.move(box.x + 256, box.y + 200);
      await page.mouse.down();
      await page.mouse.move(box.x + 256, box.y + 300, { steps: 5 });
      await page.mouse.up();
      await expect
        .poll(async () => Number(/Zoom (\d+)%/.exec(await text(page, 'overlay-wl'))?.[1]))
        .toBeGreaterThan(120);
      await expect
        .poll(async () => compare(await canvasGrey(page), softRef).within3)
        .toBeLessThan(0.5);
      await page.getByTestId('reset').click();
      await page.getByTestId('preset-soft').click();
      expect((await drawn(page, softRef)).within3).toBeGreaterThan(0.99);
      await page.getByTestId('tool-pan').click();
      await page.mouse.move(box.x + 256, box.y + 256);
      await page.mouse.down();
      await page.mouse.move(box.x + 316, box.y + 276, { steps: 5 });
      await page.mouse.up();
      await expect
        .poll(async () => compare(await canvasGrey(page), softRef).within3)
        .toBeLessThan(0.8);
      await page.getByTestId('reset').click();
      await page.getByTestId('preset-soft').click();
      expect((await drawn(page, softRef)).within3).toBeGreaterThan(0.99);

      // The tag browser shows the restored header.
      await page.getByTestId('panel-tags').click();
      await page.getByLabel('Filter tags').fill('PatientID');
      await expect
        .poll(() =>
          page.locator('[data-testid=tag-browser] tr[data-tag="(0010,0020)"]').textContent(),
        )
        .toContain(v.ctPatient);

      // The auditor view: every check passed, both chains up to the root, the container as served.
      await page.getByTestId('panel-auditor').click();
      await page.getByTestId('auditor-container').waitFor();
      const checks = await page
        .locator('[data-testid=auditor-checks] li')
        .evaluateAll((els) =>
          els.map((e) => [e.getAttribute('data-check'), e.getAttribute('data-result')]),
        );
      expect(checks.length).toBeGreaterThan(5);
      expect(checks.every(([, r]) => r === 'pass' || r === 'skipped')).toBe(true);
      for (const id of ['seal.signature', 'trace.signature', 'pixels.original', 'key.commitment'])
        expect(checks).toContainEqual([id, 'pass']);
      const auditor = (await page.getByTestId('auditor-view').textContent()) ?? '';
      expect(auditor).toContain('Saint-Louis Producer Hospital');
      expect(auditor).toContain('Nimbus Imaging Cloud');
      expect(auditor).toContain('ZTV Federation Root CA');

      // Export hands out the served instance: sealed, encrypted, traced for this clinician.
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByTestId('export').click(),
      ]);
      const exported = new Uint8Array(readFileSync((await download.path())!));
      const report = inspectProtected(exported);
      expect(report.intact).toBe(true);
      expect(report.trace).not.toBeNull();
      expect(Buffer.from(exported).includes(Buffer.from(v.ctPatient))).toBe(false);
      const original = parseDicom(new Uint8Array(readFileSync(byNumber.get(other)!))).dataset;
      const served = parseDicom(exported).dataset;
      expect(
        Buffer.from(served.get(T.PixelData)!.value!).equals(
          Buffer.from(original.get(T.PixelData)!.value!),
        ),
      ).toBe(false);
      const db = new Database(join(v.dir, 'producer', 'producer.sqlite'), { readonly: true });
      const row = db
        .prepare('SELECT clinician FROM tickets WHERE trace = ?')
        .get(report.trace!.id) as { clinician: string } | undefined;
      db.close();
      expect(row?.clinician).toBe('dr.bob');

      // Nothing about the patient or the keys in the console, the address bar or web storage.
      expect(vp.errors).toEqual([]);
      expect(vp.console.join('\n')).not.toContain(v.ctPatient);
      expect(page.url()).not.toContain(v.ctPatient);
      // Web storage holds only Cornerstone's own settings (its renderer capabilities, its log level).
      const stored = await page.evaluate(() => ({
        local: Object.fromEntries(Object.entries(localStorage)),
        session: Object.keys(sessionStorage),
      }));
      expect(stored.session).toEqual([]);
      expect(Object.keys(stored.local).sort()).toEqual([
        'cornerstone3D.renderingCapabilities',
        'loglevel',
      ]);
      expect(JSON.stringify(stored)).not.toContain(v.ctPatient);
    });
  });

  it('marks an instance corrupted at the cloud as Tampered, still shown, its tile drawn', async () => {
    // One bit of one stored instance flipped: in the high byte of the pixel at the image centre.
    const blobs = readdirSync(join(v.dir, 'cloud', 'blobs'), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((d) => d.isFile() && !d.name.startsWith('.'))
      .map((d) => join(d.parentPath, d.name))
      .sort();
    const victim = blobs[17]!;
    const good = readFileSync(victim);
    // Where the Pixel Data value starts: after its explicit-VR header (7FE0,0010) OW 0000 <length>.
    const header = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0]);
    const start = good.lastIndexOf(header) + 12;
    expect(start).toBeGreaterThan(12);
    expect(good.length - start).toBeGreaterThanOrEqual(512 * 512 * 2);
    const at = start + 2 * (256 * 512 + 256) + 1;
    const bad = Buffer.from(good);
    // Bit 8 of the sample (AES-CTR: the same bit of the plaintext), far from the container's LSB
    // planes: ±256 keeps a soft-tissue sample in range, so the slice restores and is drawn. (Bit 10,
    // ±1024, once pushed a restored sample out of range on a slice drawn by chance: Tampered, but
    // nothing to draw.)
    bad[at]! ^= 0x01;
    writeFileSync(victim, bad);
    const vp = await openViewer(browser, v.url);
    try {
      await shooting(vp, 'viewer-tampered', async () => {
        const { page } = vp;
        await signInAndEnrol(page, 'dr.bob');
        await requestPatient(page, v.ctPatient);
        await submitRequest(page, 'treatment');
        await waitForStudy(page);
        expect(await text(page, 'series-badge')).toBe('Tampered — 1 of 150 images');
        await sizeViewport(page);
        await page.getByTestId('reset').click();
        await page.getByTestId('show-tampered').click();
        await expect.poll(() => text(page, 'integrity-badge')).toMatch(/^Tampered — pixels/);
        await expect.poll(() => page.getByTestId('tampered-tile').count()).toBeGreaterThan(0);
        // The tile is drawn over the image, where the bit was flipped (the centre, 1:1 canvas).
        const tiles = page.getByTestId('tampered-tile');
        expect(await tiles.count()).toBeGreaterThanOrEqual(1);
        const rects = await tiles.evaluateAll((els) =>
          els.map((e) => ({
            x: Number(e.getAttribute('x')),
            y: Number(e.getAttribute('y')),
            w: Number(e.getAttribute('width')),
            h: Number(e.getAttribute('height')),
          })),
        );
        expect(
          rects.some((r) => r.x <= 256 && r.x + r.w >= 256 && r.y <= 256 && r.y + r.h >= 256),
        ).toBe(true);
        // Still viewable: the slice is drawn, not blank.
        const c = await canvasGrey(page);
        expect(new Set(c.grey).size).toBeGreaterThan(50);
        const detail = (await page.getByTestId('integrity-panel').textContent()) ?? '';
        expect(detail).toMatch(/tampered tile/);
        await screenshot(page, 'viewer-tampered-shown');
      });
    } finally {
      writeFileSync(victim, good);
    }
  });

  it('says the ticket expired when it reaches the cloud too late', async () => {
    // Tickets of 1.5 s, and a network that holds the redemption 2.5 s.
    await v.fed.kill('producer');
    await v.fed.start('producer', { ZTV_TICKET_TTL_MS: '1500' });
    const vp = await openViewer(browser, v.url);
    try {
      await shooting(vp, 'viewer-expired', async () => {
        const { page } = vp;
        await signInAndEnrol(page, 'dr.bob');
        await page.route(`${v.fed.urls.cloud}/session/message`, async (route) => {
          await new Promise((r) => setTimeout(r, 2500));
          await route.continue();
        });
        await requestPatient(page, v.ctPatient);
        await submitRequest(page, 'treatment');
        const problem = page.getByTestId('problem');
        await problem.waitFor({ timeout: 30_000 });
        expect(await problem.getAttribute('data-kind')).toBe('expired');
        expect(await problem.textContent()).toMatch(/The ticket has expired.*Request access again/);
        expect(await page.getByTestId('integrity-badge').count()).toBe(0);
        expect(await text(page, 'series-badge')).toMatch(/^Checking — 0 of 150/);
      });
    } finally {
      await v.fed.kill('producer');
      await v.fed.start('producer');
    }
  });

  it('says which party cannot be reached when the network fails', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'viewer-network', async () => {
      const { page } = vp;
      await signInAndEnrol(page, 'dr.bob');
      // The cloud is unreachable from here on (connection refused).
      await page.route(`${v.fed.urls.cloud}/**`, (route) => route.abort('connectionrefused'));
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      const problem = page.getByTestId('problem');
      await problem.waitFor({ timeout: 30_000 });
      expect(await problem.getAttribute('data-kind')).toBe('network');
      expect(await problem.locator('strong').textContent()).toBe('Cannot reach the cloud provider');
      expect(await problem.textContent()).toContain(v.fed.urls.cloud);
    });
  });

  it('shows the policy denial with its reason; an emergency access needs a justification', async () => {
    const vp = await openViewer(browser, v.url);
    await shooting(vp, 'viewer-denied', async () => {
      const { page } = vp;
      await signInAndEnrol(page, 'dr.alice');
      // A radiologist with no treatment relationship: nothing is listed for treatment…
      await page.getByTestId('no-studies').waitFor();
      // …and asking anyway is refused by the producer's policy, which says why.
      await requestPatient(page, v.ctPatient);
      await submitRequest(page, 'treatment');
      const problem = page.getByRole('dialog').getByTestId('problem');
      await problem.waitFor();
      expect(await problem.getAttribute('data-kind')).toBe('denied');
      expect(await problem.locator('strong').textContent()).toBe(
        "Request 1 (Treatment) refused by the producer hospital's policy",
      );
      expect(await problem.locator('span').textContent()).toMatch(
        /^consultation denied: .+\.( |$)/,
      );
      // Break the glass: refused to submit without 20 characters of justification.
      const dialog = page.getByRole('dialog', { name: 'Request access' });
      await dialog.locator('input[name=purpose][value=emergency]').check();
      const submit = dialog.getByRole('button', { name: 'Break the glass' });
      expect(await submit.isDisabled()).toBe(true);
      await dialog.locator('#justification').fill('too short');
      expect(await submit.isDisabled()).toBe(true);
      await dialog
        .locator('#justification')
        .fill('Unconscious patient in the emergency room, trauma CT');
      expect(await submit.isDisabled()).toBe(false);
      const answered = page.waitForResponse(
        (r) =>
          r.url() === `${v.fed.urls.producer}/session/message` && r.request().method() === 'POST',
      );
      await submit.click();
      await answered;
      // Only physicians may break the glass: the radiologist is refused, with the policy's reason.
      await problem.waitFor();
      expect(await problem.getAttribute('data-kind')).toBe('denied');
      expect(await problem.locator('span').textContent()).toMatch(/^consultation denied: /);
      expect(vp.errors).toEqual([]);
    });
  });
});
