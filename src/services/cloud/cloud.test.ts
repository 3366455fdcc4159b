// The cloud through app.inject, on SQLite and PostgreSQL: GET / and browser access on its public
// app; uploads on its internal app — refused through inject (no TLS peer) and taken, idempotently,
// over the real mutual TLS listener from the producer, refused when not protected or not sealed by
// the uploader; and every session operation — redeem and retrieve by a clinician's FederationClient
// (traces verified, replays and other devices refused, expiry), the trail by an AuditorClient.
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../test/databases.ts';
import { sendPartial } from '../../../test/raw-http.ts';
import {
  CLOUD_URL,
  CONSUMER_URL,
  startParties,
  STOW_TOKEN,
  type Clinician,
  type Parties,
} from '../../../test/parties.ts';
import { sampleFiles } from '../../../test/samples.ts';
import { AuditorClient } from '../../core/audit/client.ts';
import { fromHex, randomBytes, toHex } from '../../core/bytes.ts';
import type { ConsultAnswer } from '../../core/client/federation.ts';
import type { PartySessions } from '../../core/client/sessions.ts';
import { buildMultipart, readMultipart } from '../../core/multipart.ts';
import { retrieve } from '../../core/operations/redemption.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { pkiResolver } from '../../core/pki/resolver.ts';
import { openProtected, protect, traceRootCache } from '../../core/protect/index.ts';
import type { RemoteError } from '../../core/session/protocol.ts';
import { ticketProducerResolver } from '../../core/ticket/producer.ts';
import { mtlsFetch } from '../common/tls.ts';

const CT = sampleFiles('series/ct_chest_LIDC-IDRI-0314').slice(0, 2);
const read = (f: string) => new Uint8Array(readFileSync(f));
const ctPatient = parseDicom(read(CT[0]!)).dataset.text(T.PatientID)!;

describe.each(DIALECTS)('cloud on %s', (dialect) => {
  let p: Parties;
  let bob: Clinician;
  let alice: Clinician;

  /** PUT /instances/<key> over mutual TLS as the producer. */
  const upload = (key: string, body: Uint8Array) =>
    mtlsFetch(
      `${p.cloudInternalUrl}/instances/${key}`,
      { cert: p.keys.producer.certPem, key: p.keys.producer.keyPem, pki: p.pki },
      { method: 'PUT', headers: { 'content-type': 'application/dicom' }, body },
    );
  const sealedBy = (signer: Parties['keys']['producer']['signer']) =>
    protect(read(CT[1]!), { signer, pseudonymKey: randomBytes(32), what: 'the test instance' });
  const consultCt = async (who: Clinician): Promise<ConsultAnswer> =>
    who.client.consult({
      patient: ctPatient,
      purpose: 'TREAT',
      roleAssignments: [await who.assignment('attending', ctPatient)],
    });
  const alerts = async (subtype: string) =>
    (await p.cloud.audit.all()).filter((r) => r.subtype === subtype);

  beforeAll(async () => {
    p = await startParties(dialect);
    bob = await p.clinician('dr.bob', 'physician');
    alice = await p.clinician('dr.alice', 'physician');
    const r = await p.producer.app.inject({
      method: 'POST',
      url: '/studies',
      headers: {
        'content-type': 'multipart/related; type="application/dicom"; boundary=b',
        authorization: `Bearer ${STOW_TOKEN}`,
      },
      payload: Buffer.from(
        buildMultipart(
          CT.map((f) => ({ body: read(f) })),
          'b',
        ),
      ),
    });
    if (r.statusCode !== 200) throw new Error(`outsourcing failed: ${r.body}`);
  }, 120_000);
  afterAll(async () => {
    await p?.close();
  });

  it('answers GET / with what it is, its version and its health, with CORS for the viewer only', async () => {
    const r = await p.cloud.public.inject({
      method: 'GET',
      url: '/',
      headers: { origin: CONSUMER_URL },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ service: 'cloud', health: 'ok' });
    expect(r.headers['access-control-allow-origin']).toBe(CONSUMER_URL);
    expect(r.headers['cache-control']).toBe('no-store');
    const pre = await p.cloud.public.inject({
      method: 'OPTIONS',
      url: '/session/stream',
      headers: { origin: 'http://evil.test' },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses an upload without a producer’s TLS certificate, as a logged alert', async () => {
    const before = (await alerts('upload-refused')).length;
    const r = await p.cloud.internal.inject({
      method: 'PUT',
      url: `/instances/${'a'.repeat(64)}`,
      headers: { 'content-type': 'application/dicom' },
      payload: Buffer.from(read(CT[0]!)),
    });
    expect(r.statusCode).toBe(403);
    expect(await alerts('upload-refused')).toHaveLength(before + 1);
  });

  it('refuses a peer that is not a producer before reading the upload’s body, and closes', async () => {
    // A valid certificate of the federation (the cloud's own), but not a producer's: the answer
    // comes on the request's head, with 200 MB declared and 1 kB sent.
    const port = Number(new URL(p.cloudInternalUrl).port);
    const r = await sendPartial(
      port,
      `/instances/${'b'.repeat(64)}`,
      200_000_000,
      'x'.repeat(1000),
      { 'content-type': 'application/dicom' },
      (at) =>
        tlsConnect({
          port: at,
          host: '127.0.0.1',
          cert: p.keys.cloud.certPem,
          key: p.keys.cloud.keyPem,
          rejectUnauthorized: false,
        }),
      'PUT',
    );
    expect(r.answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(r.closed).toBe(true);
  });

  it('refuses an upload key that is not 64 hex digits before anything else', async () => {
    const r = await p.cloud.internal.inject({
      method: 'PUT',
      url: '/instances/not-a-key',
      headers: { 'content-type': 'application/dicom' },
      payload: Buffer.from('x'),
    });
    expect(r.statusCode).toBe(400);
  });

  it('stores a producer’s protected instance once per upload key, and refuses another under that key', async () => {
    const key = toHex(randomBytes(32));
    const sealed = await sealedBy(p.keys.producer.signer);
    const first = await upload(key, sealed.bytes);
    expect(first.status).toBe(200);
    const { id, created } = JSON.parse(first.body.toString()) as { id: string; created: boolean };
    expect(created).toBe(true);
    expect(await p.blobs.get(id)).toEqual(sealed.bytes);
    const again = await upload(key, sealed.bytes);
    expect(JSON.parse(again.body.toString())).toEqual({ id, created: false });
    const other = await upload(key, (await sealedBy(p.keys.producer.signer)).bytes);
    expect(other.status).toBe(409);
  });

  it('refuses plain DICOM, and an instance sealed by another key than the uploader’s', async () => {
    const plain = await upload(toHex(randomBytes(32)), read(CT[0]!));
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.body.toString())).toMatchObject({ error: 'not-protected' });
    const foreign = await upload(
      toHex(randomBytes(32)),
      (await sealedBy(p.keys.cloud.signer)).bytes,
    );
    expect(foreign.status).toBe(400);
    expect(JSON.parse(foreign.body.toString()).message).toMatch(/not sealed by the uploading/);
  });

  it('redeems a ticket once, and streams every image with this clinician’s trace, the named one first', async () => {
    const c = await consultCt(bob);
    const keys = await bob.client.openKeys(
      c.ticket,
      ticketProducerResolver(() => p.trust.view()),
    );
    const ids = c.series.flatMap((s) => s.instances.map((i) => i.id));
    // The device names the slice it shows first (here the ticket's last image).
    const red = await bob.client.redeem(c.ticket, [ids.at(-1)!, 'not-in-the-ticket']);
    expect([...red.images].sort()).toEqual([...ids].sort());
    const resolver = pkiResolver(p.trust.view());
    const roots = traceRootCache();
    const order: string[] = [];
    for await (const got of bob.client.retrieve(red.redemption)) {
      order.push(got.id);
      const opened = await openProtected(got.bytes, {
        resolver,
        imageKey: keys.get(got.id)!,
        traceRoots: roots,
        redemptionId: fromHex(red.redemption),
      });
      expect(opened.verdict.status, opened.verdict.summary).toBe('verified');
      expect(opened.verdict.trace?.id).toBe(c.trace);
      // Format v2: one signed root for the whole release, named by its redemption.
      expect(opened.verdict.trace?.release?.redemption).toBe(red.redemption);
      expect(opened.verdict.trace?.release?.leaves).toBe(ids.length);
    }
    expect(order).toEqual([ids.at(-1)!, ...ids.slice(0, -1)]);
    expect(roots.size).toBe(1);
    const records = await p.cloud.audit.all();
    const traced = records.find(
      (r) => r.subtype === 'trace-inserted' && r.objects.some((o) => o.id === c.ticket.tid),
    )!;
    expect(traced.details.traces).toEqual([c.trace]);
    expect(traced.details.traceRoots).toHaveLength(1);
    expect(records.findLast((r) => r.subtype === 'retrieve')!.seq).toBeGreaterThan(traced.seq);
    // The decision is logged with the release, in its transaction: the record just before it.
    const ofTicket = (rs: typeof records) =>
      rs.filter((r) => r.objects.some((o) => o.id === c.ticket.tid)).map((r) => r.subtype);
    expect(records.find((r) => r.seq === traced.seq - 1)).toMatchObject({
      subtype: 'policy-decision',
      outcome: 0,
      objects: [{ type: 'ticket', id: c.ticket.tid }],
    });
    expect(ofTicket(records)).toEqual([
      'policy-decision',
      'trace-inserted',
      'retrieve',
      'delivered',
    ]);
    // A replay is refused, and logged as such — its decision, then the alert; nothing more.
    const replay = await bob.client.redeem(c.ticket).catch((e: unknown) => e);
    expect((replay as RemoteError).code).toBe('ticket-refused');
    expect((await alerts('ticket-replayed')).at(-1)?.details.ticket).toBe(c.ticket.tid);
    const after = await p.cloud.audit.all();
    expect(ofTicket(after)).toEqual([...ofTicket(records), 'policy-decision']);
    const again = after.at(-2)!;
    expect(again).toMatchObject({ subtype: 'policy-decision', seq: after.at(-1)!.seq - 1 });
    expect(again.objects).toEqual([{ type: 'ticket', id: c.ticket.tid }]);
  });

  it('refuses another clinician’s ticket and another device’s redemption', async () => {
    const c = await consultCt(bob);
    const stolen = await alice.client.redeem(c.ticket).catch((e: unknown) => e);
    expect((stolen as RemoteError).status).toBe(403);
    expect((await alerts('ticket-refused')).at(-1)?.actor.id).toBe('dr.alice');
    const red = await bob.client.redeem(c.ticket);
    const theirs = alice.client.retrieve(red.redemption);
    await expect(theirs.next()).rejects.toMatchObject({ code: 'unknown-redemption' });
  });

  it('stops serving a redemption once its ticket expired', async () => {
    const c = await consultCt(bob);
    const red = await bob.client.redeem(c.ticket);
    const now = p.clock;
    p.clock = red.expiresAt + 1;
    try {
      await expect(bob.client.retrieve(red.redemption).next()).rejects.toMatchObject({
        code: 'expired',
      });
    } finally {
      p.clock = now;
    }
  });

  it('resumes a retrieval at a position: the rest of the same redemption, the same bytes, only for its device and while valid', async () => {
    const c = await consultCt(bob);
    const red = await bob.client.redeem(c.ticket);
    const whole: { id: string; bytes: Uint8Array }[] = [];
    for await (const got of bob.client.retrieve(red.redemption)) whole.push(got);
    expect(whole.length).toBeGreaterThanOrEqual(2);
    // The client's own sessions, asked for the stream from a position.
    const from = async (who: typeof bob, redemption: string, at: number) => {
      const s = (who.client as unknown as { sessions: PartySessions<'cloud'> }).sessions;
      // The whole stream, its final frame included, then its parts.
      const chunks: Uint8Array[] = [];
      for await (const ch of s.stream('cloud', retrieve, { redemption, from: at }))
        chunks.push(ch.slice());
      const parts: { id: string; bytes: Uint8Array }[] = [];
      for await (const part of readMultipart(chunks, { requireLength: true }))
        parts.push({
          id: /\/instances\/(.+)$/.exec(part.headers['content-location'] ?? '')![1]!,
          bytes: part.body,
        });
      return parts;
    };
    // Byte for byte what the first retrieval sent from there on: the same trace slots.
    const rest = await from(bob, red.redemption, 1);
    expect(rest.map((r) => r.id)).toEqual(whole.slice(1).map((w) => w.id));
    rest.forEach((r, i) =>
      expect(Buffer.from(r.bytes).equals(Buffer.from(whole[i + 1]!.bytes))).toBe(true),
    );
    expect(await from(bob, red.redemption, whole.length)).toEqual([]);
    await expect(from(alice, red.redemption, 1)).rejects.toMatchObject({
      code: 'unknown-redemption',
    });
    const records = await p.cloud.audit.all();
    const resumed = records.findLast((r) => r.subtype === 'retrieve')!;
    expect(resumed.details).toMatchObject({ redemption: red.redemption, from: whole.length });
    const now = p.clock;
    p.clock = red.expiresAt + 1;
    try {
      await expect(from(bob, red.redemption, 1)).rejects.toMatchObject({ code: 'expired' });
    } finally {
      p.clock = now;
    }
  });

  it('answers an auditor its trail, verified, and refuses a clinician', async () => {
    const dave = await p.clinician('auditor.dave', 'auditor');
    const auditor = new AuditorClient(
      { producer: 'http://producer.test', cloud: CLOUD_URL },
      dave.device,
      () => p.trust.view(),
      p.fetch,
    );
    const bobAsAuditor = new AuditorClient(
      { producer: 'http://producer.test', cloud: CLOUD_URL },
      bob.device,
      () => p.trust.view(),
      p.fetch,
    );
    try {
      const trail = await auditor.trail('cloud', { subtype: 'trace-inserted' });
      expect(trail.party).toBe('cloud');
      expect(trail.verification.ok).toBe(true);
      expect(trail.records.length).toBeGreaterThan(0);
      expect(trail.records.every((r) => r.subtype === 'trace-inserted')).toBe(true);
      const whole = await auditor.verifyChain('cloud');
      expect(whole.local.ok).toBe(true);
      await expect(bobAsAuditor.trail('cloud')).rejects.toMatchObject({ status: 403 });
    } finally {
      await auditor.close();
      await bobAsAuditor.close();
    }
  });
});
