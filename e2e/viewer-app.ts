/**
 * Driving the real viewer in Chromium as a clinician does — sign in, enrol this browser, open a study
 * with a declared purpose — and reading what it shows: badges, overlays, the canvas. Shared by the
 * viewer's end-to-end tests and its benchmark.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { REPO_ROOT } from '../test/samples.ts';

export const DEMO_PASSWORD = 'ztv-demo';

export interface ViewerPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught page errors and console errors seen so far. */
  readonly errors: string[];
  /** Everything the page printed on its console (the viewer prints nothing sensitive). */
  readonly console: string[];
}

/** A fresh browser context (its own IndexedDB: a device never enrolled) on the viewer. */
export async function openViewer(
  browser: Browser,
  url: string,
  opts: { width?: number; height?: number; cores?: number } = {},
): Promise<ViewerPage> {
  const context = await browser.newContext({
    viewport: { width: opts.width ?? 1400, height: opts.height ?? 900 },
    deviceScaleFactor: 1,
    acceptDownloads: true,
  });
  const page = await context.newPage();
  const errors: string[] = [];
  const consoleLines: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    consoleLines.push(m.text());
    if (m.type() === 'error') errors.push(m.text());
  });
  if (opts.cores) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setHardwareConcurrencyOverride', {
      hardwareConcurrency: opts.cores,
    });
  }
  await page.goto(url);
  return { context, page, errors, console: consoleLines };
}

export async function signIn(page: Page, user: string, password = DEMO_PASSWORD): Promise<void> {
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
}

/**
 * Signs in and, on this first use of the browser, enrols it; waits for the study list (or, for a
 * clinician the policy lets search nothing, the request by patient ID).
 */
export async function signInAndEnrol(page: Page, user: string): Promise<void> {
  await signIn(page, user);
  await page.getByRole('button', { name: 'Enrol this device' }).click();
  await page.waitForSelector(
    '[data-testid=study-list], [data-testid=no-studies], [data-testid=patient-id-only]',
    { timeout: 60_000 },
  );
}

/** Opens the consultation dialog for a listed patient (or by patient ID when not listed). */
export async function requestPatient(page: Page, patient: string): Promise<void> {
  const row = page.locator(`[data-testid=study-row][data-patient="${patient}"] button`);
  if (await row.count()) await row.first().click();
  else {
    await page.getByLabel('Patient ID', { exact: true }).fill(patient);
    await page.getByRole('button', { name: 'Request…' }).click();
  }
  await page.getByRole('dialog', { name: 'Request access' }).waitFor();
}

export async function submitRequest(
  page: Page,
  purpose: 'treatment' | 'research' | 'emergency' = 'treatment',
  justification?: string,
): Promise<void> {
  const dialog = page.getByRole('dialog', { name: 'Request access' });
  await dialog.locator(`input[name=purpose][value=${purpose}]`).check();
  if (justification) await dialog.locator('#justification').fill(justification);
  await dialog.locator('button[type=submit]').click();
}

/** Waits until every image of the study is received and checked. */
export async function waitForStudy(page: Page, timeout = 120_000): Promise<void> {
  await page.waitForSelector('[data-testid=progress][data-done=true]', { timeout });
}

/** The viewer's performance marks (ztv:*), in milliseconds since navigation. */
export async function marks(page: Page): Promise<Record<string, { at: number; detail: unknown }>> {
  const list = await page.evaluate(() =>
    performance
      .getEntriesByType('mark')
      .filter((m) => m.name.startsWith('ztv:'))
      .map((m) => ({ name: m.name, at: m.startTime, detail: (m as PerformanceMark).detail })),
  );
  const out: Record<string, { at: number; detail: unknown }> = {};
  for (const m of list) out[m.name.slice(4)] = { at: m.at, detail: m.detail };
  return out;
}

/**
 * Resizes the window so that the viewport element is exactly w×h CSS pixels (the canvas then maps
 * a 512x512 slice 1:1 when the camera fits it).
 */
export async function sizeViewport(page: Page, w = 512, h = 512): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const box = await page.locator('[data-testid=viewport]').boundingBox();
    const win = page.viewportSize()!;
    if (!box) throw new Error('no viewport on the page');
    if (Math.round(box.width) === w && Math.round(box.height) === h) return;
    await page.setViewportSize({
      width: win.width + w - Math.round(box.width),
      height: win.height + h - Math.round(box.height),
    });
    await page.waitForTimeout(150);
  }
  const box = await page.locator('[data-testid=viewport]').boundingBox();
  throw new Error(`the viewport is ${box?.width}x${box?.height}, not ${w}x${h}`);
}

/** The red channel of the viewport canvas (grey images), with its size first. */
export async function canvasGrey(page: Page): Promise<{ w: number; h: number; grey: Uint8Array }> {
  const r = await page.evaluate(() => {
    const canvas = document.querySelector('[data-testid=viewport] canvas') as HTMLCanvasElement;
    const ctx = canvas.getContext('2d')!;
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    // Base64 of one byte per pixel: a fraction of the size of a JSON array of numbers.
    let bin = '';
    for (let i = 0; i < data.length; i += 4) bin += String.fromCharCode(data[i]!);
    return { w: canvas.width, h: canvas.height, grey: btoa(bin) };
  });
  return { w: r.w, h: r.h, grey: new Uint8Array(Buffer.from(r.grey, 'base64')) };
}

/** Saves a screenshot under test-results/ (gitignored) and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = join(REPO_ROOT, 'test-results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name.replace(/[^A-Za-z0-9._-]+/g, '_')}.png`);
  await page.screenshot({ path, fullPage: true }).catch(() => undefined);
  return path;
}

/** Runs a test's steps on a viewer page; on failure saves a screenshot named `name`; closes the page. */
export async function shooting(
  vp: ViewerPage,
  name: string,
  body: (page: Page) => Promise<void>,
): Promise<void> {
  try {
    await body(vp.page);
  } catch (e) {
    console.error(`screenshot: ${await screenshot(vp.page, name)}`);
    throw e;
  } finally {
    await vp.context.close();
  }
}

/** The Instance Number of the image on screen (its overlay). */
export async function instanceShown(page: Page): Promise<number> {
  const t = (await page.getByTestId('overlay-instance').textContent()) ?? '';
  return Number(/Instance (\d+)/.exec(t)?.[1]);
}

/** Drags on the viewport from image pixel a to image pixel b (their centres; the canvas mapped 1:1). */
export async function drag(page: Page, a: [number, number], b: [number, number]): Promise<void> {
  const box = (await page.getByTestId('viewport').boundingBox())!;
  await page.mouse.move(box.x + a[0] + 0.5, box.y + a[1] + 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + b[0] + 0.5, box.y + b[1] + 0.5, { steps: 8 });
  await page.mouse.up();
}

/** The measurements panel's rows. */
export const measurementRows = (page: Page) => page.getByTestId('measurement');

/** The numbers of measurement `i` as the panel shows them now ({} until computed). */
export async function measurementStats(page: Page, i: number): Promise<Record<string, unknown>> {
  const row = measurementRows(page).nth(i);
  return JSON.parse((await row.getAttribute('data-stats')) ?? '{}') as Record<string, unknown>;
}
