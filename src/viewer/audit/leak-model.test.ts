// Leak tracing as the auditor view shows it, on real protected images verified through a real
// federation PKI: a resolved trace names the requester, ticket, purpose, rules and break-glass with its
// review; an altered trace, or one signed outside the federation, is forged and never looked up (the
// client has no producer to ask); an image never traced says so; an original file is no protected
// image; a producer that does not answer is named. The result card renders each field with its hook.
import { readFileSync } from 'node:fs';
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { beforeAll, describe, expect, it } from 'vitest';
import { samplePath } from '../../../test/samples.ts';
import { testKeys } from '../../../test/keys.ts';
import { AuditorClient, type LeakReport, type TraceResolution } from '../../core/audit/client.ts';
import { examineLeak } from '../../core/audit/leak.ts';
import { toHex } from '../../core/bytes.ts';
import type { Endpoints } from '../../core/client/federation.ts';
import { pkiResolver, type PkiView } from '../../core/pki/resolver.ts';
import { encodeTraceSlot } from '../../core/protect/container.ts';
import { readProtected } from '../../core/protect/image.ts';
import { protect, traceIdFrom, traceProtected, writeTraceSlot } from '../../core/protect/index.ts';
import { testTrust, type TestTrust } from '../../../test/pipeline.ts';
import { viewOf } from '../pipeline/trust.ts';
import { namingFetch } from './auditor.ts';
import { LeakResult } from './LeakTrace.tsx';
import { breakGlassText, describeLeak, describeLeakFailure } from './leak-model.ts';

const ENDPOINTS: Endpoints = {
  producer: 'http://127.0.0.1:9',
  cloud: 'http://127.0.0.1:10',
  consumer: 'http://127.0.0.1:11',
};

let trust: TestTrust;
let view: PkiView;
let original: Uint8Array;
let sealed: Uint8Array;
let traced: Uint8Array;
const trace = traceIdFrom('leak-model');
/** Every request the clients below make: none is expected unless a trace verifies. */
const requests: string[] = [];

const client = () =>
  new AuditorClient(
    ENDPOINTS,
    { signing: trust.pki.organisations.consumer.keys, chain: [] },
    () => view,
    namingFetch(ENDPOINTS, async (input) => {
      requests.push(String(input));
      throw new TypeError('Failed to fetch');
    }),
  );

const resolution = (over: Partial<NonNullable<TraceResolution['ticket']>> = {}) => ({
  trace: toHex(trace),
  known: true,
  ticket: {
    tid: 'a1'.repeat(16),
    requester: 'dr.bob',
    hospital: 'consumer',
    device: 'd0'.repeat(32),
    issuedAt: '2026-03-01T10:00:00.000Z',
    expiresAt: '2026-03-01T10:15:00.000Z',
    purpose: 'treatment',
    rules: ['ATTENDING'],
    obligations: ['log-request:pre'],
    breakGlass: false,
    review: 'none',
    reviewer: null,
    reviewedAt: null,
    patient: 'b9'.repeat(16),
    study: 'f8'.repeat(16),
    images: 3,
    ...over,
  },
});

async function reportOf(bytes: Uint8Array, res: TraceResolution): Promise<LeakReport> {
  const { verdict, ...rest } = await examineLeak(bytes, pkiResolver(view));
  expect(rest.trace).toBe('verified');
  return {
    status: res.known ? 'resolved' : 'unknown',
    examination: { ...rest, summary: verdict.summary },
    resolution: res,
  };
}

beforeAll(async () => {
  trust = await testTrust();
  view = await viewOf(trust.bundle);
  original = new Uint8Array(readFileSync(samplePath('small/CT_small.dcm')));
  sealed = (await protect(original, { signer: trust.producer, pseudonymKey: new Uint8Array(32) }))
    .bytes;
  traced = await traceProtected(sealed, { signer: trust.cloud, traceId: trace });
});

describe('leak tracing in the auditor view', () => {
  it('names the requester, hospital, device, times, purpose, ticket, rules and break-glass of a resolved trace', async () => {
    const res = resolution();
    const v = describeLeak(await reportOf(traced, res));
    const t = res.ticket;
    expect(v.status).toBe('resolved');
    expect(v.title).toBe(`Obtained by ${t.requester}`);
    const f = Object.fromEntries(v.fields.map((x) => [x.id, x.value]));
    expect(f).toMatchObject({
      requester: t.requester,
      hospital: t.hospital,
      device: t.device,
      issued: t.issuedAt,
      purpose: t.purpose,
      ticket: t.tid,
      rules: 'ATTENDING',
      'break-glass': 'not used',
      patient: t.patient,
      trace: toHex(trace),
      image: 'as sealed (pixels and header unaltered)',
    });
    expect(f['traced-at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(f.cloud).toContain('Nimbus Imaging Cloud');
    expect(f.producer).toContain('Saint-Louis Producer Hospital');

    // The card: every field under its test hook.
    const html = renderToStaticMarkup(createElement(LeakResult, { file: 'x.dcm', view: v }));
    expect(html).toContain('data-status="resolved"');
    expect(html).toContain(`data-testid="leak-requester">${t.requester}<`);
    expect(html).toContain(`data-testid="leak-ticket">${t.tid}<`);
    // …and, where the area can show trails, the way to the ticket's trail (only for a resolved trace).
    const onTrail = () => undefined;
    expect(
      renderToStaticMarkup(createElement(LeakResult, { file: 'x.dcm', view: v, onTrail })),
    ).toContain('data-testid="leak-show-trail"');
    const unknown = describeLeak(await reportOf(traced, { trace: toHex(trace), known: false }));
    expect(
      renderToStaticMarkup(createElement(LeakResult, { file: 'x.dcm', view: unknown, onTrail })),
    ).not.toContain('leak-show-trail');
  });

  it('says whether the glass was broken, and how the access was reviewed', async () => {
    expect(breakGlassText(resolution().ticket)).toBe('not used');
    const pending = resolution({ breakGlass: true, review: 'pending', rules: ['BREAK-GLASS'] });
    const v = describeLeak(await reportOf(traced, pending));
    expect(v.fields.find((x) => x.id === 'break-glass')?.value).toBe('used — review pending');
    expect(
      breakGlassText({
        breakGlass: true,
        review: 'unjustified',
        reviewer: 'auditor.dave',
        reviewedAt: '2026-03-02T08:00:00.000Z',
      }),
    ).toBe('used — reviewed unjustified by auditor.dave at 2026-03-02T08:00:00.000Z');
  });

  it('a valid trace on altered pixels still names the requester, and says the image was altered', async () => {
    const bad = traced.slice();
    const pixels = readProtected(bad).parsed.pixelDataOffset!;
    bad[pixels + 2 * (32 * 128 + 64) + 1]! ^= 0x04; // an encrypted high bit, off the container
    const v = describeLeak(await reportOf(bad, resolution()));
    expect(v.status).toBe('resolved');
    expect(v.fields.find((x) => x.id === 'image')?.value).toMatch(/^ALTERED after sealing/);
  });

  it('a verified trace no ticket has is unknown, and names no one', async () => {
    const v = describeLeak(await reportOf(traced, { trace: toHex(trace), known: false }));
    expect(v.status).toBe('unknown');
    expect(v.fields.map((f) => f.id)).not.toContain('requester');
  });

  it('an altered trace is forged and is not looked up in any log', async () => {
    requests.length = 0;
    const slot = readProtected(traced).container!.trace!;
    const other = slot.traceId.slice();
    other[5]! ^= 0x10;
    const forged = writeTraceSlot(traced, encodeTraceSlot({ ...slot, traceId: other }));
    const v = describeLeak(await client().traceLeak(forged, 'forged.dcm'));
    expect(v.status).toBe('forged');
    // Format v2: the altered trace record no longer leads to the release's signed root.
    expect(v.reasons).toContain(
      "the inclusion path does not lead from the trace record to the release's signed root",
    );
    expect(v.fields.find((f) => f.id === 'trace')?.value).toBe(toHex(other));
    expect(v.fields.map((f) => f.id)).not.toContain('requester');
    expect(requests).toEqual([]);
    const html = renderToStaticMarkup(createElement(LeakResult, { file: 'forged.dcm', view: v }));
    expect(html).toContain('data-testid="leak-reasons"');
  });

  it('a trace signed by a cloud outside the federation is forged', async () => {
    const outsider = (await testKeys()).cloud;
    const foreign = await traceProtected(sealed, { signer: outsider, traceId: trace });
    const v = describeLeak(await client().traceLeak(foreign));
    expect(v.status).toBe('forged');
    expect(v.reasons.length).toBeGreaterThan(0);
    expect(requests).toEqual([]);
  });

  it('a protected image that was never served is untraced; an original file is no protected image', async () => {
    const v = describeLeak(await client().traceLeak(sealed));
    expect(v.status).toBe('untraced');
    expect(v.title).toBe('Never traced');
    expect(requests).toEqual([]);

    const plain = await client()
      .traceLeak(original, 'scan.dcm')
      .then(
        () => undefined,
        (e: unknown) => describeLeakFailure(e, 'scan.dcm'),
      );
    expect(plain?.status).toBe('not-protected');
    expect(plain?.title).toBe('Not a protected image');
    const text = await client()
      .traceLeak(new TextEncoder().encode('not an image at all'), 'notes.txt')
      .then(
        () => undefined,
        (e: unknown) => describeLeakFailure(e, 'notes.txt'),
      );
    expect(text?.status).toBe('not-protected');
  });

  it('a verified trace with the producer unreachable names the producer', async () => {
    requests.length = 0;
    const failure = await client()
      .traceLeak(traced)
      .then(
        () => undefined,
        (e: unknown) => describeLeakFailure(e, 'leaked.dcm'),
      );
    expect(requests[0]).toMatch(/^http:\/\/127\.0\.0\.1:9\/session\//);
    expect(failure?.status).toBe('failed');
    expect(failure?.title).toBe('Cannot reach the producer hospital');
    expect(failure?.explanation).toContain('http://127.0.0.1:9');
  });
});
