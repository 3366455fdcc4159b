// The auditor area end to end, in Debian's Chromium against a real federation (four processes, a few
// CT slices outsourced, the viewer built with the federation's root pinned): dr.bob opens a study and
// exports the served instance — the "leaked" file; auditor.dave, in a fresh browser context, drops it
// into the auditor view, which names dr.bob and the ticket (as `ztv trace-leak` does on the same file);
// the same file with its trace altered is forged, one traced by the cloud for no ticket unknown, the
// cloud's stored copy never traced, an original file no protected image. The merged trail of the patient
// spans the three parties, every chain verified in the browser, and exports as valid DICOM audit
// messages and CSV. dr.bob breaks the glass; the auditor sees it pending with its justification, reviews
// it (the trace of that export then shows the review), and is told why when another reviewer was
// first. Finally one audit record is rewritten in the producer's database: the trail view shows the
// break on that record (seq and kind), as `ztv audit verify` does. Failures leave screenshots.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditorClient, enrollDevice } from '../src/core/audit/client.ts';
import { parseCsv } from '../src/core/audit/csv.ts';
import { randomBytes } from '../src/core/bytes.ts';
import { FederationClient, fetchTrust } from '../src/core/client/federation.ts';
import { signingKeyFromPem } from '../src/core/crypto/keys.ts';
import { encodeTraceSlot } from '../src/core/protect/container.ts';
import { readProtected } from '../src/core/protect/image.ts';
import { inspectProtected } from '../src/core/protect/inspect.ts';
import { traceProtected, writeTraceSlot } from '../src/core/protect/trace.ts';
import { REPO_ROOT } from '../test/samples.ts';
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
import { validateAuditMessages } from '../test/audit-schema.ts';

const BIN = join(REPO_ROOT, 'bin/ztv.js');
const JUSTIFICATION = 'Unconscious patient in the emergency room, prior chest CT needed now';

let v: ViewerFederation;
let browser: Browser;
let bob: ViewerPage;
let dave: ViewerPage;
const file = (name: string) => join(v.dir, name);

/** The ztv command line, as an auditor runs it (asynchronously: the browser keeps running). */
function ztv(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: v.dir, env: { ...process.env, ZTV_PASSWORD: '', DATABASE_URL: '' }, timeout: 90_000 },
      (e, out, err) =>
        resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err }),
    );
  });
}

const auditorArgs = () => [
  '--consumer',
  v.fed.urls.consumer,
  '--producer',
  v.fed.urls.producer,
  '--user',
  'auditor.dave',
  '--password-file',
  file('password'),
  '--root',
  file(join('pki', 'ca.pem')),
];

/** The producer's own record of a ticket, read from its database (not through the viewer). */
function ticketOfTrace(trace: string): { tid: string; clinician: string; device: string } {
  const db = new Database(file(join('producer', 'producer.sqlite')), { readonly: true });
  try {
    return db.prepare('SELECT tid, clinician, device FROM tickets WHERE trace = ?').get(trace) as {
      tid: string;
      clinician: string;
      device: string;
    };
  } finally {
    db.close();
  }
}

async function downloaded(page: Page, click: () => Promise<void>): Promise<Download> {
  const [d] = await Promise.all([page.waitForEvent('download'), click()]);
  return d;
}

const bytesOf = async (d: Download) => new Uint8Array(readFileSync((await d.path())!));

/** Drops a file on the auditor's drop zone, as a drag from the desktop does. */
async function drop(page: Page, path: string, name: string): Promise<void> {
  const b64 = readFileSync(path).toString('base64');
  const dataTransfer = await page.evaluateHandle(
    ({ b64, name }) => {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: 'application/dicom' }));
      return dt;
    },
    { b64, name },
  );
  await page.dispatchEvent('[data-testid=leak-drop]', 'dragover', { dataTransfer });
  await page.dispatchEvent('[data-testid=leak-drop]', 'drop', { dataTransfer });
}

/** The leak results of these files (by name, in order) once each is examined: status and fields. */
async function leakResults(page: Page, names: readonly string[]) {
  const results = page.getByTestId('leak-result');
  await page.waitForFunction(
    (want) => {
      const els = [...document.querySelectorAll('[data-testid=leak-result]')];
      return (
        els.map((e) => e.getAttribute('data-file')).join('\n') === want.join('\n') &&
        els.every((e) => e.getAttribute('data-status') !== 'checking')
      );
    },
    names,
    { timeout: 60_000 },
  );
  return results.evaluateAll((els) =>
    els.map((e) => ({
      status: e.getAttribute('data-status'),
      text: e.textContent ?? '',
      fields: Object.fromEntries(
        [...e.querySelectorAll('[data-testid^=leak-]')].map((f) => [
          f.getAttribute('data-testid')!.slice(5),
          f.textContent ?? '',
        ]),
      ),
    })),
  );
}

/** Shows the trail of the study's patient and waits for it, verified. */
async function showPatientTrail(page: Page): Promise<void> {
  await page.getByTestId('audit-trail').click();
  await page.getByTestId('trail-kind').selectOption('patient');
  await page.getByTestId('trail-value').fill(v.ctPatient);
  await page.getByRole('button', { name: 'Show trail' }).click();
  await page.getByTestId('trail-loading').waitFor({ state: 'detached', timeout: 60_000 });
  await page.getByTestId('chains').waitFor();
}

const chains = (page: Page) =>
  page
    .getByTestId('chain')
    .evaluateAll((els) =>
      els.map((e) => [
        e.getAttribute('data-party'),
        e.getAttribute('data-ok'),
        e.getAttribute('data-breaks'),
      ]),
    );

const rows = (page: Page) =>
  page.getByTestId('trail-row').evaluateAll((els) =>
    els.map((e) => ({
      party: e.getAttribute('data-party')!,
      seq: Number(e.getAttribute('data-seq')),
      subtype: e.getAttribute('data-subtype')!,
      breaks: e.getAttribute('data-breaks')!,
      text: e.textContent ?? '',
    })),
  );

async function validXml(xml: string): Promise<number> {
  const lines = xml.trimEnd().split('\n');
  const r = await validateAuditMessages(lines);
  expect(r.errors, r.rawOutput).toEqual([]);
  return lines.length;
}

/** Runs a test body; on failure, screenshots of both browsers go to test-results/. */
async function shooting(name: string, body: () => Promise<void>) {
  try {
    await body();
  } catch (e) {
    for (const [who, vp] of [
      ['bob', bob],
      ['dave', dave],
    ] as const)
      if (vp) console.error(`screenshot: ${await screenshot(vp.page, `${name}-${who}`)}`);
    throw e;
  }
}

beforeAll(async () => {
  v = await startViewerFederation({ slices: 3 });
  writeFileSync(file('password'), 'ztv-demo\n');
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await bob?.context.close();
  await dave?.context.close();
  await browser?.close();
  await v?.close();
});

describe('the auditor area, end to end', () => {
  let leakedTrace: string;
  let leakedTicket: string;

  it('traces a clinician’s exported instance to them in the browser and on the command line; forged, unknown, untraced and unprotected files say so', async () => {
    await shooting('audit-leak', async () => {
      // dr.bob opens the study and exports the instance on screen: the file that "leaks".
      bob = await openViewer(browser, v.url);
      await signInAndEnrol(bob.page, 'dr.bob');
      await requestPatient(bob.page, v.ctPatient);
      await submitRequest(bob.page, 'treatment');
      await waitForStudy(bob.page);
      const leaked = await bytesOf(
        await downloaded(bob.page, () => bob.page.getByTestId('export').click()),
      );
      writeFileSync(file('leaked.dcm'), leaked);
      leakedTrace = inspectProtected(leaked).trace!.id;
      const ticket = ticketOfTrace(leakedTrace);
      expect(ticket.clinician).toBe('dr.bob');
      leakedTicket = ticket.tid;

      // The command line names them.
      const cli = await ztv('trace-leak', file('leaked.dcm'), ...auditorArgs());
      expect(cli.code, cli.err).toBe(0);
      expect(cli.out).toMatch(/requester\s+dr\.bob/);
      expect(cli.out).toContain(`ticket      ${leakedTicket}`);

      // The auditor, in a browser of their own, drops the file: dr.bob, the ticket and the rest.
      dave = await openViewer(browser, v.url);
      await signIn(dave.page, 'auditor.dave');
      await dave.page.getByRole('button', { name: 'Enrol this device' }).click();
      await dave.page.getByTestId('leak-drop').waitFor({ timeout: 60_000 });
      expect(await dave.page.getByTestId('tab-audit').getAttribute('aria-selected')).toBe('true');
      await drop(dave.page, file('leaked.dcm'), 'found-on-a-usb-stick.dcm');
      const [resolved] = await leakResults(dave.page, ['found-on-a-usb-stick.dcm']);
      expect(resolved!.status).toBe('resolved');
      expect(resolved!.fields).toMatchObject({
        title: 'Obtained by dr.bob',
        requester: 'dr.bob',
        ticket: leakedTicket,
        trace: leakedTrace,
        device: ticket.device,
        purpose: 'TREAT',
        rules: 'ATTENDING',
        'break-glass': 'not used',
        image: 'as sealed (pixels and header unaltered)',
      });
      expect(resolved!.fields.hospital).toBeTruthy();
      expect(resolved!.fields.cloud).toContain('Nimbus Imaging Cloud');
      expect(resolved!.fields.producer).toContain('Saint-Louis Producer Hospital');
      // The same ticket the command line named.
      expect(cli.out).toContain(`device      ${resolved!.fields.device}`);
      expect(resolved!.text).not.toContain(v.ctPatient);

      // Corroborated by the trail of that ticket: the cloud inserted this very trace, then served it.
      await dave.page.getByTestId('leak-show-trail').click();
      await dave.page.getByTestId('chains').waitFor({ timeout: 60_000 });
      expect(await dave.page.getByTestId('trail-value').inputValue()).toBe(leakedTicket);
      const ofTicket = await rows(dave.page);
      expect(ofTicket.find((r) => r.subtype === 'trace-inserted')?.text).toContain(leakedTrace);
      expect(ofTicket.map((r) => `${r.party}:${r.subtype}`)).toContain('cloud:retrieve');
      expect(ofTicket.map((r) => `${r.party}:${r.subtype}`)).toContain('producer:ticket-issued');
      await dave.page.getByTestId('audit-leak').click();

      // The same file with one bit of its trace altered; a trace the cloud signed for no ticket; the
      // cloud's stored copy (never served); an original, unprotected file — picked together.
      const slot = readProtected(leaked).container!.trace!;
      const altered = slot.traceId.slice();
      altered[0]! ^= 0x01;
      writeFileSync(
        file('forged.dcm'),
        writeTraceSlot(leaked, encodeTraceSlot({ ...slot, traceId: altered })),
      );
      const cloudKey = await signingKeyFromPem(readFileSync(file('pki/cloud.key.pem'), 'utf8'));
      writeFileSync(
        file('unknown.dcm'),
        await traceProtected(leaked, { signer: cloudKey, traceId: randomBytes(32) }),
      );
      const stored = readdirSync(file('cloud/blobs'), { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile() && !d.name.startsWith('.'))
        .map((d) => join(d.parentPath, d.name))[0]!;
      expect(inspectProtected(new Uint8Array(readFileSync(stored))).trace).toBeFalsy();
      await dave.page
        .getByTestId('leak-file')
        .setInputFiles([file('forged.dcm'), file('unknown.dcm'), stored, v.ct[0]!]);
      const [forged, unknown, untraced, original] = await leakResults(dave.page, [
        'forged.dcm',
        'unknown.dcm',
        basename(stored),
        basename(v.ct[0]!),
      ]);
      expect(forged!.status).toBe('forged');
      expect(forged!.fields.title).toBe('Forged trace');
      expect(forged!.fields.reasons).toContain(
        "the inclusion path does not lead from the trace record to the release's signed root",
      );
      expect(forged!.text).not.toContain('dr.bob');
      expect(forged!.text).not.toContain(leakedTicket);
      expect(unknown!.status).toBe('unknown');
      expect(unknown!.fields.cloud).toContain('Nimbus Imaging Cloud');
      expect(unknown!.text).not.toContain('dr.bob');
      expect(untraced!.status).toBe('untraced');
      expect(untraced!.fields.title).toBe('Never traced');
      expect(original!.status).toBe('not-protected');
      expect(original!.text).not.toContain(v.ctPatient);

      // …and the command line agrees on the forged one.
      const f = await ztv('trace-leak', file('forged.dcm'), ...auditorArgs());
      expect(f.code).toBe(1);
      expect(f.out).toContain('FORGED');
    });
  });

  it('shows the merged trail of the patient, every chain verified in the browser, and exports it as DICOM audit messages and CSV', async () => {
    await shooting('audit-trail', async () => {
      const { page } = dave;
      await showPatientTrail(page);
      expect((await chains(page)).sort()).toEqual([
        ['cloud', 'true', ''],
        ['consumer', 'true', ''],
        ['producer', 'true', ''],
      ]);
      const chainText = (await page.getByTestId('chains').textContent()) ?? '';
      expect(chainText).toContain("verified here with the producer's certified key");
      const shown = await rows(page);
      const kinds = shown.map((r) => `${r.party}:${r.subtype}`);
      for (const k of [
        'producer:request-logged',
        'producer:ticket-issued',
        'cloud:trace-inserted',
        'cloud:retrieve',
        'consumer:login',
        'consumer:device-enrolled',
      ])
        expect(kinds).toContain(k);
      expect(shown.every((r) => r.breaks === '')).toBe(true);
      const issued = shown.find((r) => r.subtype === 'ticket-issued')!;
      expect(issued.text).toContain('dr.bob');
      expect(issued.text).toContain(leakedTicket);
      const inserted = shown.find((r) => r.subtype === 'trace-inserted')!;
      expect(inserted.text).toContain(leakedTrace);
      // In an auditor's words: the trace record's images as a count that opens, the hospital by its
      // name, the decision as fields.
      const images = page.locator(
        '[data-testid=trail-row][data-subtype=trace-inserted] [data-testid=row-images]',
      );
      expect(await images.first().getAttribute('data-count')).toBe('3');
      expect(await images.first().locator('summary').textContent()).toBe('3 images');
      expect(await images.first().locator('li').first().isVisible()).toBe(false);
      expect(issued.text).toContain('dr.bob (physician) · Riverside Consumer Hospital');
      const decision = page
        .locator('[data-testid=trail-row][data-party=producer][data-subtype=policy-decision]')
        .first();
      expect(await decision.locator('[data-field=Decision]').textContent()).toBe('allowed');
      expect(await decision.locator('[data-field=Purpose]').textContent()).toBe(
        'TREAT (treatment)',
      );
      expect(await decision.getByTestId('row-outcome').textContent()).toBe('succeeded');
      expect(shown.some((r) => /minor failure|serious failure/.test(r.text))).toBe(false);
      expect(await page.getByTestId('trail-count').textContent()).toBe(
        `${shown.length} record(s) shown`,
      );

      // The shown selection, as DICOM audit messages valid against the PS3.15 schema, and as CSV.
      const xml = new TextDecoder().decode(
        await bytesOf(await downloaded(page, () => page.getByTestId('export-xml').click())),
      );
      expect(await validXml(xml)).toBe(shown.length);
      expect(xml).toContain('UserID="dr.bob"'); // the requester, as an active participant
      const csv = new TextDecoder().decode(
        await bytesOf(await downloaded(page, () => page.getByTestId('export-csv').click())),
      );
      const table = parseCsv(csv);
      expect(table).toHaveLength(shown.length + 1);
      expect(table.slice(1).map((r) => `${r[0]}:${r[1]}`)).toEqual(
        shown.map((r) => `${r.party}:${r.seq}`),
      );
      for (const text of [xml, csv]) expect(text).not.toContain(v.ctPatient);

      // Only the producer's records: the view and the export follow.
      await page.getByTestId('show-cloud').uncheck();
      await page.getByTestId('show-consumer').uncheck();
      const producerOnly = await rows(page);
      expect(producerOnly.length).toBeGreaterThan(0);
      expect(producerOnly.every((r) => r.party === 'producer')).toBe(true);
      const csv2 = parseCsv(
        new TextDecoder().decode(
          await bytesOf(await downloaded(page, () => page.getByTestId('export-csv').click())),
        ),
      );
      expect(csv2).toHaveLength(producerOnly.length + 1);
      await page.getByTestId('show-cloud').check();
      await page.getByTestId('show-consumer').check();

      // A malformed ticket is refused before anything is sent.
      await page.getByTestId('trail-kind').selectOption('ticket');
      await page.getByTestId('trail-value').fill('not-a-ticket');
      await page.getByRole('button', { name: 'Show trail' }).click();
      expect(await page.getByTestId('trail-invalid').textContent()).toMatch(/32 hexadecimal/);

      // Nothing about the patient in the console, the address bar or web storage.
      expect(dave.errors).toEqual([]);
      expect(dave.console.join('\n')).not.toContain(v.ctPatient);
      expect(page.url()).not.toContain(v.ctPatient);
      const stored = await page.evaluate(() =>
        JSON.stringify({ ...localStorage, ...sessionStorage }),
      );
      expect(stored).not.toContain(v.ctPatient);
    });
  });

  it('break-glass: pending with its justification, reviewed by the auditor (the trace then shows it), and a review another auditor made first is refused with its reason', async () => {
    await shooting('audit-break-glass', async () => {
      // dr.bob breaks the glass twice, and exports an instance of the first emergency access.
      const emergency = async () => {
        await bob.page.getByTestId('tab-studies').click();
        await requestPatient(bob.page, v.ctPatient);
        await submitRequest(bob.page, 'emergency', JUSTIFICATION);
        await waitForStudy(bob.page);
      };
      await emergency();
      const bgFile = await bytesOf(
        await downloaded(bob.page, () => bob.page.getByTestId('export').click()),
      );
      writeFileSync(file('break-glass.dcm'), bgFile);
      const first = ticketOfTrace(inspectProtected(bgFile).trace!.id).tid;
      await emergency();
      const db = new Database(file(join('producer', 'producer.sqlite')), { readonly: true });
      const second = (
        db
          .prepare('SELECT tid FROM tickets WHERE emergency = 1 AND tid <> ? ORDER BY issued_at')
          .all(first) as { tid: string }[]
      ).at(-1)!.tid;
      db.close();

      const { page } = dave;
      await page.getByTestId('audit-break-glass').click();
      const card = (tid: string) => page.locator(`[data-testid=pending-row][data-ticket="${tid}"]`);
      await card(first).waitFor();
      await card(second).waitFor();
      expect(await card(first).getByTestId('pending-requester').textContent()).toMatch(
        /^dr\.bob · /,
      );
      expect(await card(first).getByTestId('pending-justification').textContent()).toBe(
        JUSTIFICATION,
      );
      expect(await card(first).textContent()).toContain('BREAK-GLASS');

      // The first: reviewed here, after a confirmation.
      await card(first).getByTestId('review-justified').click();
      await card(first).getByTestId('review-confirm').click();
      const done = page.locator(`[data-testid=reviewed][data-ticket="${first}"]`);
      await done.waitFor();
      expect(await done.textContent()).toContain('justified, by auditor.dave');
      expect(await card(first).count()).toBe(0);

      // The second: another auditor reviews it while it is on screen; recording it here is refused.
      const { token } = await FederationClient.login(
        v.fed.urls.consumer,
        'auditor.dave',
        'ztv-demo',
      );
      const trust = await fetchTrust(v.fed.urls.consumer, readFileSync(file('pki/ca.pem'), 'utf8'));
      const other = new AuditorClient(
        { producer: v.fed.urls.producer },
        await enrollDevice(v.fed.urls.consumer, token, 'second auditor'),
        () => trust,
      );
      try {
        await other.review(second, 'unjustified');
      } finally {
        await other.close();
      }
      await card(second).getByTestId('review-justified').click();
      await card(second).getByTestId('review-confirm').click();
      const refusal = card(second).getByTestId('review-refusal');
      await refusal.waitFor();
      expect(await refusal.getAttribute('data-kind')).toBe('already-reviewed');
      expect(await refusal.textContent()).toContain(
        'already reviewed (unjustified by auditor.dave)',
      );
      // Final: no outcome is offered for it any more.
      expect(await card(second).getByTestId('review-justified').count()).toBe(0);

      // The first emergency access's export, traced: break-glass used, and its review.
      await page.getByTestId('audit-leak').click();
      await drop(page, file('break-glass.dcm'), 'break-glass.dcm');
      const [r] = await leakResults(page, ['break-glass.dcm']);
      expect(r!.status).toBe('resolved');
      expect(r!.fields.ticket).toBe(first);
      expect(r!.fields.rules!.split(', ')).toContain('BREAK-GLASS');
      expect(r!.fields['break-glass']).toMatch(/^used — reviewed justified by auditor\.dave at /);
      expect(r!.text).not.toContain(JUSTIFICATION); // the justification is for the reviewer only
    });
  });

  it('a record rewritten in the producer database: the trail view shows its seq and kind, as ztv audit verify does', async () => {
    await shooting('audit-rewritten', async () => {
      const { page } = dave;
      // The producer's database, compared with the witness (its statements through the hospital).
      const verifyProducer = (...more: string[]) =>
        ztv(
          'audit',
          'verify',
          '--data',
          v.dir,
          '--party',
          'producer',
          '--witness',
          v.fed.urls.consumer,
          ...more,
        );
      const before = await verifyProducer();
      expect(before.code, before.out + before.err).toBe(0);

      // One of the producer's records of the patient's consultations, as the view showed it.
      await showPatientTrail(page);
      const target = (await rows(page)).find(
        (r) => r.party === 'producer' && r.subtype === 'request-logged',
      )!;
      const db = new Database(file(join('producer', 'producer.sqlite')));
      db.pragma('busy_timeout = 5000');
      const row = db.prepare('SELECT details FROM audit_records WHERE seq = ?').get(target.seq) as {
        details: string;
      };
      const details = JSON.parse(row.details) as Record<string, unknown>;
      expect(details.purpose).toBeTruthy();
      db.prepare('UPDATE audit_records SET details = ? WHERE seq = ?').run(
        JSON.stringify({ ...details, purpose: 'HRESCH' }),
        target.seq,
      );
      db.close();

      // Shown again: the producer's chain is broken at exactly that record, the others are intact.
      await showPatientTrail(page);
      expect((await chains(page)).sort()).toEqual([
        ['cloud', 'true', ''],
        ['consumer', 'true', ''],
        ['producer', 'false', `${target.seq}:hash-mismatch`],
      ]);
      const broken = (await rows(page)).filter((r) => r.breaks !== '');
      expect(broken.map((r) => [r.party, r.seq, r.breaks])).toEqual([
        ['producer', target.seq, 'hash-mismatch'],
      ]);
      const sentence = page
        .locator(`[data-testid=trail-row][data-party=producer][data-seq="${target.seq}"]`)
        .getByTestId('row-break');
      expect(await sentence.textContent()).toBe(
        `⚠ record ${target.seq}: hash-mismatch — record ${target.seq} was rewritten: its content no longer matches its hash`,
      );

      // The command line on the database names the same record and the same failure.
      const after = await verifyProducer('--json');
      expect(after.code).toBe(1);
      const [report] = JSON.parse(after.out) as {
        local: { breaks: { seq: number; kind: string }[] };
      }[];
      expect(report!.local.breaks.map((b) => `${b.seq}:${b.kind}`)).toEqual([
        `${target.seq}:hash-mismatch`,
      ]);
      const text = await verifyProducer();
      expect(text.out).toContain(
        `record ${target.seq}: hash-mismatch: record ${target.seq} was rewritten`,
      );
      expect(dave.errors).toEqual([]);
    });
  });
});
