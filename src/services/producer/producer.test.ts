// The producer hospital through app.inject, on SQLite and PostgreSQL, with the cloud's internal
// listener on a loopback port (mutual TLS) to upload to: GET /, browser access, STOW-RS (stored,
// idempotent, refused with reasons), and every session operation — search and consult by a
// clinician's FederationClient (revoke-delegation too), and the auditors' operations by an
// AuditorClient — plus the slice positions the consultation answer carries.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../test/databases.ts';
import { deflatedDicomBomb } from '../../../test/deflate-bomb.ts';
import {
  CONSUMER_URL,
  PRODUCER_URL,
  startParties,
  STOW_TOKEN,
  type Clinician,
  type Parties,
} from '../../../test/parties.ts';
import { sendPartial } from '../../../test/raw-http.ts';
import { sampleFiles, samplePath } from '../../../test/samples.ts';
import { AuditorClient } from '../../core/audit/client.ts';
import { toBase64 } from '../../core/bytes.ts';
import { pemDecode, signingKeyFromCryptoKeys } from '../../core/crypto/keys.ts';
import { allowedPurposesIn } from '../../core/policy/purposes.ts';
import { issueDelegation } from '../../core/policy/statements.ts';
import { studyRef } from '../../core/audit/trail.ts';
import { RemoteError } from '../../core/session/protocol.ts';
import { buildMultipart } from '../../core/multipart.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { ticketProducerResolver } from '../../core/ticket/producer.ts';
import { pkiResolver } from '../../core/pki/resolver.ts';
import { openProtected } from '../../core/protect/index.ts';
import { DIRECTORY_CACHE_MS } from '../policy/directory.ts';
import { slicePosition } from './outsourcing.ts';
import { PRIVATE_CREATOR } from './stow.ts';

const CT = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(0, 2);
const OTHER = samplePath('small/CT_small.dcm');
const read = (f: string) => new Uint8Array(readFileSync(f));
const ctPatient = parseDicom(read(CT[0]!)).dataset.text(T.PatientID)!;

const stow = (p: Parties, parts: Uint8Array[], token = STOW_TOKEN) =>
  p.producer.app.inject({
    method: 'POST',
    url: '/studies',
    headers: {
      'content-type': 'multipart/related; type="application/dicom"; boundary=b0undary',
      authorization: `Bearer ${token}`,
    },
    payload: Buffer.from(
      buildMultipart(
        parts.map((body) => ({ body })),
        'b0undary',
      ),
    ),
  });

type StowAnswer = Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }>;

describe.each(DIALECTS)('producer hospital on %s', (dialect) => {
  let p: Parties;
  let bob: Clinician;
  let erin: Clinician;
  let dave: Clinician;
  let auditor: AuditorClient;

  beforeAll(async () => {
    p = await startParties(dialect);
    bob = await p.clinician('dr.bob', 'physician');
    erin = await p.clinician('admin.erin', 'administrative');
    dave = await p.clinician('auditor.dave', 'auditor');
    auditor = new AuditorClient(
      { producer: PRODUCER_URL },
      dave.device,
      () => p.trust.view(),
      p.fetch,
    );
  }, 120_000);
  afterAll(async () => {
    await auditor?.close();
    await p?.close();
  });

  it('answers GET / with what it is, its version and its health', async () => {
    const r = await p.producer.app.inject({ method: 'GET', url: '/' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      service: 'producer',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      health: 'ok',
      checks: { database: 'ok', trust: 'ok' },
    });
  });

  it('answers the viewer’s preflight, names no other origin, and sends the API’s security headers', async () => {
    const pre = await p.producer.app.inject({
      method: 'OPTIONS',
      url: '/session/connect',
      headers: { origin: CONSUMER_URL, 'access-control-request-method': 'POST' },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe(CONSUMER_URL);
    expect(pre.headers['access-control-allow-methods']).toBe('POST');
    const other = await p.producer.app.inject({
      method: 'OPTIONS',
      url: '/session/connect',
      headers: { origin: 'http://evil.test' },
    });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const r = await p.producer.app.inject({ method: 'GET', url: '/' });
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('refuses STOW-RS without the integration token, or with another, and stores nothing', async () => {
    const none = await p.producer.app.inject({
      method: 'POST',
      url: '/studies',
      headers: { 'content-type': 'multipart/related; boundary=x' },
      payload: 'x',
    });
    expect(none.statusCode).toBe(401);
    expect((await stow(p, [read(CT[0]!)], 'not-the-token-0123456789')).statusCode).toBe(401);
    expect(await p.producerDb.db.selectFrom('instances').selectAll().execute()).toHaveLength(0);
  });

  it('refuses a body that is not multipart/related with a sentence', async () => {
    const r = await p.producer.app.inject({
      method: 'POST',
      url: '/studies',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${STOW_TOKEN}` },
      payload: '{}',
    });
    expect(r.statusCode).toBeGreaterThanOrEqual(400);
    expect(r.statusCode).toBeLessThan(500);
  });

  it('stores instances at the cloud and answers the PS3.18 response, then the same again from its records', async () => {
    // The first file twice, side by side (parts are protected concurrently): stored once.
    const r = await stow(p, [read(CT[0]!), ...CT.map(read), read(OTHER)]);
    expect(r.statusCode).toBe(200);
    const json = r.json<StowAnswer>();
    const [once, twice, ...rest] = json['00081199']!.Value!;
    const refs = [once!, ...rest];
    expect(refs).toHaveLength(3);
    const sops = [...CT, OTHER].map((f) => parseDicom(read(f)).dataset.text(T.SOPInstanceUID));
    expect(refs.map((x) => x['00081155']!.Value![0])).toEqual(sops);
    const urls = refs.map((x) => String(x['00081190']!.Value![0]));
    // Private block ZTV 1: (0009,1002) says each was stored by this request.
    expect(refs.map((x) => x['00091002']!.Value![0])).toEqual(['NEW', 'NEW', 'NEW']);
    expect(urls.every((u) => /^cloud:[0-9a-f-]{36}$/.test(u))).toBe(true);
    expect(twice!['00081190']!.Value![0]).toBe(urls[0]);
    expect(twice!['00091002']!.Value![0]).toBe('ALREADY_STORED');
    // Stored at the cloud, with the upload recorded on both sides.
    const cloudRows = await p.cloudDb.db.selectFrom('instances').select('id').execute();
    expect(cloudRows.map((x) => `cloud:${x.id}`).sort()).toEqual([...urls].sort());
    const series = await p.producerDb.db.selectFrom('series').selectAll().execute();
    const ds = parseDicom(read(CT[0]!)).dataset;
    expect(series.find((s) => s.uid === ds.text(T.SeriesInstanceUID))?.number).toBe(
      ds.number(T.SeriesNumber),
    );
    const outsourced = (await p.producer.audit.all()).filter((x) => x.subtype === 'outsourcing');
    expect(outsourced).toHaveLength(3);
    // Idempotent: the same files again store nothing new and answer the same ids.
    const again = await stow(p, [read(CT[0]!)]);
    expect(again.statusCode).toBe(200);
    expect(again.json<StowAnswer>()['00081199']!.Value![0]!['00081190']!.Value![0]).toBe(urls[0]);
    expect(again.json<StowAnswer>()['00081199']!.Value![0]!['00091002']!.Value![0]).toBe(
      'ALREADY_STORED',
    );
    expect(await p.cloudDb.db.selectFrom('instances').select('id').execute()).toHaveLength(3);
  });

  it('reads a STOW-RS body as it streams in, parts without Content-Length too (as other toolkits send)', async () => {
    const bytes = read(OTHER);
    const head = Buffer.from(
      'preamble\r\n--other-toolkit\r\nContent-Type: application/dicom\r\n\r\n',
    );
    const tail = Buffer.from('\r\n--other-toolkit--\r\n');
    const body = Buffer.concat([head, bytes, tail]);
    const pieces = Array.from({ length: Math.ceil(body.length / 4096) }, (_, i) =>
      body.subarray(i * 4096, (i + 1) * 4096),
    );
    const r = await p.producer.app.inject({
      method: 'POST',
      url: '/studies',
      headers: {
        'content-type': 'multipart/related; type="application/dicom"; boundary="other-toolkit"',
        authorization: `Bearer ${STOW_TOKEN}`,
      },
      payload: Readable.from(pieces),
    });
    expect(r.statusCode).toBe(200);
    expect(r.json<StowAnswer>()['00081199']!.Value![0]!['00081155']!.Value![0]).toBe(
      parseDicom(bytes).dataset.text(T.SOPInstanceUID),
    );
  });

  it('refuses a broken part with its reason (202 beside a good one, 409 alone)', async () => {
    const broken = read(CT[1]!).slice(0, 300);
    const some = await stow(p, [broken, read(CT[0]!)]);
    expect(some.statusCode).toBe(202);
    const failed = some.json<StowAnswer>()['00081198']!.Value!;
    expect(failed).toHaveLength(1);
    expect(failed[0]!['00081197']!.Value).toEqual([0xc000]);
    expect(failed[0]!['00090010']!.Value).toEqual([PRIVATE_CREATOR]);
    expect(String(failed[0]!['00091001']!.Value![0])).toMatch(/^part 1: \S.{10,}/);
    expect((await stow(p, [broken])).statusCode).toBe(409);
  });

  it('refuses a deflated instance that would inflate beyond the limit, before inflating it all', async () => {
    // 200 kB that inflates to 200 MB (issue 16 §2): refused at 128 MiB, with its reason.
    const r = await stow(p, [deflatedDicomBomb(200)]);
    expect(r.statusCode).toBe(409);
    const failed = r.json<StowAnswer>()['00081198']!.Value!;
    expect(String(failed[0]!['00091001']!.Value![0])).toContain(
      'inflates to more than 134217728 bytes',
    );
  });

  it('answers at once, without reading the body, and closes the connection: STOW-RS without its token, a declared length beyond the limit, 64 MB to /session/connect', async () => {
    await p.producer.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (p.producer.app.server.address() as AddressInfo).port;
    const multipart = {
      'content-type': 'multipart/related; type="application/dicom"; boundary=b0undary',
    };
    const noToken = await sendPartial(
      port,
      '/studies',
      64 * 1024 * 1024,
      '--b0undary\r\n',
      multipart,
    );
    expect(noToken.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(noToken.closed).toBe(true);
    const tooLong = await sendPartial(port, '/studies', 600_000_000, '--b0undary\r\n', {
      ...multipart,
      authorization: `Bearer ${STOW_TOKEN}`,
    });
    expect(tooLong.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(tooLong.closed).toBe(true);
    const connect = await sendPartial(port, '/session/connect', 64 * 1024 * 1024, '{"versions":');
    expect(connect.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(connect.closed).toBe(true);
  });

  it('lists for a physician the studies the policy lets them open, logs the filter, denies an administrator', async () => {
    const ra = [await bob.assignment('attending', ctPatient)];
    const r = await bob.client.search('TREAT', ra);
    expect(r.studies.map((s) => s.patient.id)).toEqual([ctPatient]);
    expect(r.studies[0]!.series[0]!.instances).toBe(CT.length);
    const filter = (await p.producer.audit.all()).findLast((x) => x.subtype === 'search-filter');
    expect(filter?.actor.id).toBe('dr.bob');
    expect(filter?.details.listed).toBe(1);
    expect(JSON.stringify(filter)).not.toContain(ctPatient);
    await expect(erin.client.search('TREAT')).rejects.toThrow(/denied/);
  });

  it('answers QIDO-RS study and series searches in DICOM JSON among the studies the policy lists, and logs no typed identifier', async () => {
    expect((await stow(p, [read(OTHER), ...CT.map(read)])).statusCode).toBe(200);
    const ct = parseDicom(read(CT[0]!)).dataset;
    const other = parseDicom(read(OTHER)).dataset;
    const [ctStudy, otherStudy] = [ct, other].map((d) => d.text(T.StudyInstanceUID)!);
    const otherPatient = other.text(T.PatientID)!;
    const both = [
      await bob.assignment('attending', ctPatient),
      await bob.assignment('attending', otherPatient),
    ];
    const q = (resource: string, ra = both) => bob.client.qido(resource, 'TREAT', ra);
    const uids = (m: Awaited<ReturnType<typeof q>>) => m.map((x) => x['0020000D']!.Value![0]);

    expect(uids(await q('/studies')).sort()).toEqual([ctStudy, otherStudy].sort());
    const [byId] = await q(`/studies?PatientID=${encodeURIComponent(ctPatient)}`);
    expect(byId).toMatchObject({
      '0020000D': { vr: 'UI', Value: [ctStudy] },
      '00100020': { vr: 'LO', Value: [ctPatient] },
      '00080061': { vr: 'CS', Value: ['CT'] },
      '00201206': { vr: 'IS', Value: [1] },
      '00201208': { vr: 'IS', Value: [CT.length] },
    });
    expect(uids(await q(`/studies?00100020=${encodeURIComponent(ctPatient)}`))).toEqual([ctStudy]);
    // Wildcards, date ranges, names.
    expect(
      uids(await q(`/studies?PatientID=${encodeURIComponent(ctPatient.slice(0, 6))}*`)),
    ).toEqual([ctStudy]);
    const date = ct.text(T.StudyDate)!;
    expect(uids(await q(`/studies?StudyDate=${date}`))).toContain(ctStudy);
    expect(uids(await q(`/studies?StudyDate=${date}-${date}&PatientID=${ctPatient}`))).toEqual([
      ctStudy,
    ]);
    expect(await q('/studies?StudyDate=-18991231')).toEqual([]);
    const name = other.text(T.PatientName)!;
    const word = name.split(/[\^ ]/)[0]!.slice(0, 3).toLowerCase();
    expect(uids(await q(`/studies?PatientName=${word}&fuzzymatching=true`))).toContain(otherStudy);
    // Series: of one study, and across studies.
    const series = await q(`/studies/${ctStudy}/series`);
    expect(series).toHaveLength(1);
    expect(series[0]).toMatchObject({
      '0020000D': { Value: [ctStudy] },
      '0020000E': { Value: [ct.text(T.SeriesInstanceUID)] },
      '00080060': { Value: ['CT'] },
      '00201209': { Value: [CT.length] },
    });
    expect(series[0]!['00100020']).toBeUndefined();
    const all = await q('/series?Modality=CT&limit=1');
    expect(all).toHaveLength(1);
    expect(all[0]!['00100020']).toBeDefined();
    // The same policy as the study list: without an assignment for the other patient, it is not found.
    expect(await q(`/studies?PatientID=${otherPatient}`, [both[0]!])).toEqual([]);
    await expect(erin.client.qido('/studies', 'TREAT')).rejects.toThrow(/denied/);
    // Refused at the boundary, with the key it names.
    await expect(q('/studies?PatientSex=F')).rejects.toThrow(/PatientSex: not a matching key/);
    await expect(q('/instances')).rejects.toThrow(/QIDO-RS here is/);
    await expect(q('/studies?StudyDate=2020')).rejects.toThrow(/StudyDate: YYYYMMDD/);
    // The log keeps which keys were used, never the patient ID or name typed.
    const logged = (await p.producer.audit.all()).filter(
      (x) => x.subtype === 'request-logged' && x.details.operation === 'qido',
    );
    expect(logged.length).toBeGreaterThan(5);
    expect(logged.some((x) => JSON.stringify(x.details.matching) === '["PatientID"]')).toBe(true);
    const text = JSON.stringify(await p.producer.audit.all());
    expect(text).not.toContain(ctPatient);
    expect(text).not.toContain(otherPatient);
  });

  it('issues a ticket whose key part opens on this device only, after logging the request', async () => {
    const ra = [await bob.assignment('attending', ctPatient)];
    const c = await bob.client.consult({
      patient: ctPatient,
      purpose: 'TREAT',
      roleAssignments: ra,
    });
    expect(c.decision.rules).toEqual(['ATTENDING']);
    const ids = c.series.flatMap((s) => s.instances.map((i) => i.id));
    expect(ids).toHaveLength(CT.length);
    const keys = await bob.client.openKeys(
      c.ticket,
      ticketProducerResolver(() => p.trust.view()),
    );
    expect([...keys.keys()].sort()).toEqual([...ids].sort());
    await expect(
      erin.client.openKeys(
        c.ticket,
        ticketProducerResolver(() => p.trust.view()),
      ),
    ).rejects.toThrow();
    const records = (await p.producer.audit.all()).filter((x) => x.actor.id === 'dr.bob');
    const issued = records.find((x) => x.objects.some((o) => o.id === c.ticket.tid))!;
    const request = records.findLast((x) => x.seq < issued.seq && x.subtype === 'request-logged');
    expect(request?.details.operation).toBe('consult');
    // Stored with its trace; the patient is named in the log by pseudonym only.
    const row = await p.producerDb.db
      .selectFrom('tickets')
      .selectAll()
      .where('tid', '=', c.ticket.tid)
      .executeTakeFirstOrThrow();
    expect(row.trace).toBe(c.trace);
    expect(JSON.stringify(records)).not.toContain(ctPatient);
  });

  it('releases pixels without identity for research (K_p), identity for treatment (K_i); refuses research on older images', async () => {
    const rita = await p.clinician('dr.rita', 'radiologist');
    const resolver = pkiResolver(p.trust.view());
    const ticketResolver = ticketProducerResolver(() => p.trust.view());
    const openAll = async (who: Clinician, purpose: string, roleAssignments: string[] = []) => {
      const c = await who.client.consult({ patient: ctPatient, purpose, roleAssignments });
      const keys = await who.client.openKeys(c.ticket, ticketResolver);
      expect(keys.size).toBe(CT.length);
      const opened = [];
      for (const [id, key] of keys)
        opened.push(await openProtected(await p.blobs.get(id), { resolver, imageKey: key }));
      return { c, opened };
    };
    const research = await openAll(rita, 'HRESCH');
    for (const o of research.opened) {
      expect(o.verdict.status).toBe('verified');
      expect(o.verdict.disclosure).toBe('pseudonymised');
      expect(o.restored!.dataset.text(T.PatientID)).not.toBe(ctPatient);
      expect(o.restored!.dataset.has(T.EncryptedAttributesSequence)).toBe(false);
    }
    // The answer names the study and series by reference, without description or date.
    expect(research.c.study).toMatchObject({
      uid: expect.stringMatching(/^[0-9a-f]{32}$/),
      date: '',
    });
    expect(research.c.series.every((s) => /^[0-9a-f]{32}$/.test(s.uid) && !s.description)).toBe(
      true,
    );
    const issued = (await p.producer.audit.all()).find((r) =>
      r.objects.some((o) => o.id === research.c.ticket.tid),
    );
    expect(issued?.details.disclosure).toBe('pseudonymised');
    const ra = [await bob.assignment('attending', ctPatient)];
    const treatment = await openAll(bob, 'TREAT', ra);
    expect(treatment.c.study.uid).toBe(parseDicom(read(CT[0]!)).dataset.text(T.StudyInstanceUID));
    for (const o of treatment.opened) {
      expect(o.verdict.disclosure).toBe('identified');
      expect(o.restored!.dataset.text(T.PatientID)).toBe(ctPatient);
    }

    // An image protected before pixel keys existed: research is refused (its key would disclose
    // the identity), with an audit record; treatment is not affected.
    const older = research.c.series[0]!.instances[0]!.id;
    const mark = (v: number) =>
      p.producerDb.db
        .updateTable('instances')
        .set({ pixel_key: v })
        .where('cloud_id', '=', older)
        .execute();
    await mark(0);
    try {
      const refused = await rita.client
        .consult({ patient: ctPatient, purpose: 'HRESCH' })
        .catch((e: unknown) => e);
      expect((refused as RemoteError).status).toBe(409);
      expect((refused as RemoteError).code).toBe('identity-bound');
      expect((refused as RemoteError).message).toMatch(
        /1 of the 2 images .* without the patient's identity/,
      );
      const logged = (await p.producer.audit.all()).findLast((r) => r.actor.id === 'dr.rita');
      expect(logged).toMatchObject({
        subtype: 'ticket-refused',
        details: { reason: 'identity-bound' },
      });
      await expect(
        bob.client.consult({ patient: ctPatient, purpose: 'TREAT', roleAssignments: ra }),
      ).resolves.toMatchObject({ trace: expect.any(String) });
    } finally {
      await mark(1);
      await rita.client.close();
    }
  });

  it('denies a consultation the policy does not allow, and a study of another patient', async () => {
    const denied = await erin.client
      .consult({ patient: ctPatient, purpose: 'TREAT' })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(RemoteError);
    expect((denied as RemoteError).status).toBe(403);
    // The refusal names what the clinician may ask for instead: nothing, for an administrator…
    expect(allowedPurposesIn((denied as RemoteError).message)).toEqual([]);
    // …emergency treatment (break the glass) for a physician with no care relationship.
    const bobDenied = await bob.client
      .consult({ patient: ctPatient, purpose: 'TREAT', roleAssignments: [] })
      .catch((e: unknown) => e);
    expect((bobDenied as RemoteError).status).toBe(403);
    expect(allowedPurposesIn((bobDenied as RemoteError).message)).toEqual(['ETREAT']);
    // Only the refusal itself is logged: the hypothetical decisions behind the list are not.
    const decisions = (await p.producer.audit.all()).filter(
      (x) => x.subtype === 'policy-decision' && x.actor.id === 'dr.bob',
    );
    expect(decisions.at(-1)?.details.decision).toMatchObject({ decision: 'deny' });
    expect(JSON.stringify(decisions.at(-1))).not.toContain('ETREAT');
    const missing = await bob.client
      .consult({ patient: 'no-such-patient', purpose: 'TREAT' })
      .catch((e: unknown) => e);
    expect((missing as RemoteError).code).toBe('unknown-study');
  });

  it('keeps the justification of a refused break-the-glass request in its audit record', async () => {
    const from = (await p.producer.audit.all()).length;
    const why = 'patient collapsed in the waiting room, needs the prior scan now';
    // Refused by the policy (an administrator cannot break the glass) and before any decision (no
    // such study): both keep what was typed.
    await expect(
      erin.client.consult({ patient: ctPatient, purpose: 'ETREAT', emergencyJustification: why }),
    ).rejects.toMatchObject({ status: 403 });
    await expect(
      bob.client.consult({
        patient: 'no-such-patient',
        purpose: 'ETREAT',
        emergencyJustification: why,
      }),
    ).rejects.toMatchObject({ code: 'unknown-study' });
    const logged = (await p.producer.audit.all())
      .slice(from)
      .filter((r) => r.subtype === 'request-logged');
    expect(logged.map((r) => [r.actor.id, r.details.justification])).toEqual([
      ['admin.erin', why],
      ['dr.bob', why],
    ]);
  });

  it('ends what a sign-in enabled at sign-out: search, consultation and redemption then fail', async () => {
    const dan = await p.clinician('dr.dan', 'physician');
    const ra = [await dan.assignment('attending', ctPatient)];
    const ticket = (
      await dan.client.consult({ patient: ctPatient, purpose: 'TREAT', roleAssignments: ra })
    ).ticket;
    expect((await dan.client.search('TREAT', ra)).studies).toHaveLength(1);
    await dan.signOut();
    // Deciding parties keep a directory entry DIRECTORY_CACHE_MS at the most.
    p.clock += DIRECTORY_CACHE_MS + 1000;
    await expect(dan.client.search('TREAT', ra)).rejects.toThrow(/dr\.dan has no live sign-in/);
    await expect(
      dan.client.consult({ patient: ctPatient, purpose: 'TREAT', roleAssignments: ra }),
    ).rejects.toMatchObject({ status: 403, message: expect.stringMatching(/no live sign-in/) });
    await expect(dan.client.redeem(ticket)).rejects.toThrow(/no live sign-in/);
    await dan.client.close();
    // Another clinician, still signed in, is not affected.
    expect(
      (await bob.client.search('TREAT', [await bob.assignment('attending', ctPatient)])).studies,
    ).toHaveLength(1);
  });

  it('refuses a body outside the operation’s schema before any work, with the field named', async () => {
    const r = await bob.client
      .consult({ patient: ctPatient, purpose: 'Not A Purpose' })
      .catch((e: unknown) => e);
    expect((r as RemoteError).code).toBe('bad-request');
    expect((r as RemoteError).message).toMatch(/purpose/);
  });

  it('refuses a purpose of use outside the policy’s vocabulary with 400 and an alert, before any request or decision', async () => {
    const before = (await p.producer.audit.all()).length;
    for (const purpose of ['TRAIN', 'ZZZ']) {
      const r = await bob.client
        .consult({ patient: ctPatient, purpose, roleAssignments: [] })
        .catch((e: unknown) => e);
      expect((r as RemoteError).status).toBe(400);
      expect((r as RemoteError).message).toMatch(
        new RegExp(`purpose of use ${purpose} is not in the policy's vocabulary`),
      );
      const s = await bob.client.search(purpose).catch((e: unknown) => e);
      expect((s as RemoteError).status).toBe(400);
    }
    const added = (await p.producer.audit.all()).slice(before);
    expect(added.map((r) => [r.event, r.subtype, r.actor.id])).toEqual(
      Array.from({ length: 4 }, () => ['110113', 'session-refused', 'dr.bob']),
    );
    expect(added[0]!.details.message).toMatch(/purpose of use TRAIN is not in the policy's/);
  });

  it('revokes a delegation at its delegator’s request only; the policy then refuses the chain', async () => {
    const alice = await p.clinician('dr.alice', 'radiologist');
    const key = await signingKeyFromCryptoKeys(
      'ECDSA-P256',
      alice.device.signing.privateKey,
      alice.device.signing.publicKey,
    );
    const delegation = await issueDelegation(
      {
        key,
        kid: key.publicKey.keyIdHex,
        x5c: alice.device.chain.map((pem) => toBase64(pemDecode(pem, 'CERTIFICATE'))),
      },
      {
        iss: 'dr.alice',
        iss_org: 'consumer',
        sub: 'dr.bob',
        sub_org: 'consumer',
        role: 'radiologist',
        activity: 'consult',
        nbf: p.clock - 60_000,
        exp: p.clock + 3600_000,
      },
    );
    const notHis = await bob.client.revokeDelegation(delegation).catch((e: unknown) => e);
    expect((notHis as RemoteError).status).toBe(403);
    expect((notHis as RemoteError).message).toMatch(/only the delegator/);
    const forged = await alice.client
      .revokeDelegation('eyJhbGciOiJub25lIn0.e30.not-a-signature')
      .catch((e: unknown) => e);
    expect((forged as RemoteError).code).toBe('bad-statement');

    const revoked = await alice.client.revokeDelegation(delegation);
    expect(revoked.until).toBe(p.clock + 3600_000);
    const row = await p.producerDb.db
      .selectFrom('revoked_statements')
      .selectAll()
      .where('jti', '=', revoked.revoked)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ issuer: 'dr.alice', organization: 'consumer' });
    const logged = (await p.producer.audit.all()).findLast(
      (r) => r.subtype === 'delegation-revoked',
    );
    expect(logged?.objects).toEqual([{ type: 'policy', id: revoked.revoked }]);
    // Revoking again changes nothing; the chain with that hop no longer counts.
    await expect(alice.client.revokeDelegation(delegation)).resolves.toEqual(revoked);
    const denied = await bob.client
      .consult({ patient: ctPatient, purpose: 'HRESCH', delegations: [[delegation]] })
      .catch((e: unknown) => e);
    expect((denied as RemoteError).status).toBe(403);
    expect((denied as RemoteError).message).toMatch(/revoked/);
  });

  it('answers auditors: trace resolution, pseudonym, trail by patient id, break-glass review', async () => {
    const ra = [await bob.assignment('attending', ctPatient)];
    const c = await bob.client.consult({
      patient: ctPatient,
      purpose: 'TREAT',
      roleAssignments: ra,
    });
    const resolved = await auditor.resolveTrace(c.trace);
    expect(resolved.known).toBe(true);
    expect(resolved.ticket).toMatchObject({ tid: c.ticket.tid, requester: 'dr.bob' });
    const pseudonym = await auditor.pseudonym(ctPatient);
    expect(resolved.ticket!.patient).toBe(pseudonym);
    expect(resolved.ticket!.study).toBe(studyRef(c.study.uid));
    const unknown = await auditor.resolveTrace('ab'.repeat(32));
    expect(unknown).toEqual({ trace: 'ab'.repeat(32), known: false });
    const trail = await auditor.mergedTrail({ patientId: ctPatient });
    expect(trail.entries.some((e) => e.record.objects.some((o) => o.id === c.ticket.tid))).toBe(
      true,
    );
    expect(trail.chains.every((ch) => ch.ok)).toBe(true);
    // Break-glass: an emergency access awaits review; a review settles it once.
    const bg = await bob.client.consult({
      patient: ctPatient,
      purpose: 'ETREAT',
      emergencyJustification: 'unconscious patient in the emergency room',
    });
    const pending = await auditor.pendingBreakGlass();
    expect(pending.pending.map((x) => x.tid)).toContain(bg.ticket.tid);
    const reviewed = await auditor.review(bg.ticket.tid, 'justified');
    expect(reviewed).toMatchObject({ ticket: bg.ticket.tid, review: 'justified' });
    const twice = await auditor.review(bg.ticket.tid, 'justified').catch((e: unknown) => e);
    expect((twice as RemoteError).code).toBe('already-reviewed');
    // A clinician is no auditor.
    const bobAsAuditor = new AuditorClient(
      { producer: PRODUCER_URL },
      bob.device,
      () => p.trust.view(),
      p.fetch,
    );
    const refused = await bobAsAuditor.pseudonym(ctPatient).catch((e: unknown) => e);
    expect((refused as RemoteError).status).toBe(403);
    await bobAsAuditor.close();
  });
});

describe('slice positions', () => {
  it('reads z from Image Position (Patient), keeping 0 and negative positions', () => {
    expect(slicePosition('-170.5\\-190.2\\-302.5')).toBe(-302.5);
    expect(slicePosition('0\\0\\0')).toBe(0);
    expect(slicePosition('1\\2\\ 12.25 ')).toBe(12.25);
  });

  it('gives null when there is no usable z', () => {
    expect(slicePosition(undefined)).toBeNull();
    expect(slicePosition('1\\2')).toBeNull();
    expect(slicePosition('1\\2\\')).toBeNull();
    expect(slicePosition('1\\2\\abc')).toBeNull();
  });
});
