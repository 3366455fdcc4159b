// The two scenarios of the platform between real processes over real HTTP — outsourcing (STOW-RS →
// protect → mutual TLS → cloud) and consultation (session → policy → blind ticket → redemption →
// trace → streamed retrieval) — and every attack on a ticket, each refused with a logged security
// alert. Runs on embedded SQLite and on PostgreSQL.
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordHash, type AuditRecord } from '../src/core/audit/record.ts';
import { fetchTrust, type ConsultAnswer } from '../src/core/client/federation.ts';
import { signingKeyFromPem } from '../src/core/crypto/keys.ts';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import { T } from '../src/core/dicom/tags.ts';
import { OID } from '../src/core/pki/oids.ts';
import { pkiResolver } from '../src/core/pki/resolver.ts';
import { openProtected } from '../src/core/protect/index.ts';
import { RemoteError } from '../src/core/session/protocol.ts';
import { issueTicket, type Ticket } from '../src/core/ticket/ticket.ts';
import { loadPkiDir } from '../src/services/common/pki-dir.ts';
import { mtlsFetch } from '../src/services/common/tls.ts';
import { DIALECTS } from './databases.ts';
import { startTestFederation, type TestClinician, type TestFederation } from './federation.ts';
import { REPO_ROOT } from './samples.ts';

describe.each(DIALECTS)('the federation on %s', (dialect) => {
  let t: TestFederation;
  let bob: TestClinician;
  let alice: TestClinician;

  beforeAll(async () => {
    t = await startTestFederation({ postgres: dialect === 'postgres' });
    bob = await t.clinician('dr.bob');
    alice = await t.clinician('dr.alice');
  }, 180_000);
  afterAll(async () => {
    await t?.close();
  });

  const consultCt = (who: TestClinician = bob): Promise<ConsultAnswer> =>
    who.client.consult({
      patient: t.ctPatient,
      purpose: who === bob ? 'TREAT' : 'HRESCH',
      roleAssignments: who.roleAssignments,
    });

  /** Cloud audit records appended after `since` (a seq). */
  const cloudRecordsAfter = async (since: number): Promise<AuditRecord[]> =>
    (await t.audit('cloud')).filter((r) => r.seq > since);
  const cloudHead = async (): Promise<number> => (await t.audit('cloud')).at(-1)?.seq ?? 0;

  /** Expects `attempt` to be refused by the cloud and a security alert naming why. */
  async function expectRefused(
    attempt: () => Promise<unknown>,
    message: RegExp,
    subtype = 'ticket-refused',
  ): Promise<AuditRecord> {
    const since = await cloudHead();
    const err = await attempt().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'the attempt must fail').toBeInstanceOf(RemoteError);
    expect((err as RemoteError).status).toBe(403);
    expect((err as RemoteError).message).toMatch(message);
    const alerts = (await cloudRecordsAfter(since)).filter((r) => r.event === '110113');
    expect(alerts.map((a) => a.subtype)).toContain(subtype);
    const alert = alerts.find((a) => a.subtype === subtype)!;
    expect(alert.outcome).toBe(8);
    return alert;
  }

  /** A ticket signed with a key of the PKI directory, as the producer would issue it but tweaked. */
  async function craftTicket(opts: {
    signer?: 'producer' | 'consumer';
    cloudId?: string;
    images?: { id: string }[];
    ttlMs?: number;
    now?: number;
    holder?: TestClinician;
  }): Promise<Ticket> {
    const dir = t.fed.config.pkiDir;
    const pki = await loadPkiDir(dir);
    const signer = await signingKeyFromPem(
      readFileSync(join(dir, `${opts.signer ?? 'producer'}.key.pem`), 'utf8'),
    );
    const cloudCert = pki.organisations.find((c) => c.subject.includes('OU=cloud'))!;
    const cloudKey = await crypto.subtle.importKey(
      'spki',
      new Uint8Array(cloudCert.getExtension(OID.encryptionKeyExtension)!.value),
      { name: 'ECDH', namedCurve: 'P-256' },
      true,
      [],
    );
    const holder = opts.holder ?? bob;
    const real = await consultCt();
    const images = opts.images ?? real.series.flatMap((s) => s.instances);
    return issueTicket({
      producer: signer,
      producerId: 'producer',
      cloudId: opts.cloudId ?? 'cloud',
      cloudEncryptionKey: cloudKey,
      deviceId: await holder.client.deviceId(),
      deviceEncryptionKey: holder.device.encryption.publicKey,
      images: images.map((i) => ({
        id: i.id,
        key: new Uint8Array(16),
        trace: new Uint8Array(32).fill(7),
      })),
      ttlMs: opts.ttlMs ?? 60_000,
      purpose: 'TREAT',
      ...(opts.now !== undefined ? { now: opts.now } : {}),
    });
  }

  /** Replaces one character of a compact JWS part (0 header, 1 payload, 2 signature). */
  const alter = (jws: string, part: number): string => {
    const parts = jws.split('.');
    const p = parts[part]!;
    const i = Math.floor(p.length / 2);
    parts[part] = p.slice(0, i) + (p[i] === 'A' ? 'B' : 'A') + p.slice(i + 1);
    return parts.join('.');
  };

  /** `ztv outsource` as an operator runs it, against this federation's producer. */
  const outsourceCli = (...files: string[]) =>
    spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'src/cli/ztv.ts'),
        'outsource',
        '--producer',
        t.fed.urls.producer,
        '--data',
        t.dir,
        ...files,
      ],
      { encoding: 'utf8', cwd: REPO_ROOT },
    );

  describe('outsourcing', () => {
    it('stores every instance at the cloud once, with its key wrapped at the producer', async () => {
      const producer = await t.database<{
        instances: { status: string; cloud_id: string | null; wrapped_key: string };
      }>('producer');
      const cloud = await t.database<{ instances: { id: string; digest: string } }>('cloud');
      try {
        const rows = await producer.db.selectFrom('instances').selectAll().execute();
        expect(rows).toHaveLength(t.ct.length + t.other.length);
        expect(rows.every((r) => r.status === 'done' && r.cloud_id)).toBe(true);
        // AES-GCM under the KEK: 12-byte IV, the key, a 16-byte tag — never the bare key.
        expect(rows.every((r) => /^[0-9a-f]+$/.test(r.wrapped_key))).toBe(true);
        expect(new Set(rows.map((r) => r.wrapped_key.length))).toEqual(
          new Set([(12 + 32 + 16) * 2]),
        );
        const stored = await cloud.db.selectFrom('instances').selectAll().execute();
        expect(stored.map((s) => s.id).sort()).toEqual(rows.map((r) => r.cloud_id).sort());
      } finally {
        await producer.close();
        await cloud.close();
      }
    });

    it('is idempotent: sending the same files again through `ztv outsource` stores nothing new', async () => {
      const before = (await t.audit('cloud')).filter((r) => r.subtype === 'outsourcing').length;
      const r = outsourceCli(...t.ct);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toMatch(
        new RegExp(
          `^${t.ct.length} instance\\(s\\): 0 new, ${t.ct.length} already stored at the cloud in \\d+\\.\\d s$`,
        ),
      );
      expect(r.status).toBe(0);
      const after = (await t.audit('cloud')).filter((r) => r.subtype === 'outsourcing').length;
      expect(after).toBe(before);
    });

    it('refuses a broken file with the reason and still stores the good ones', async () => {
      const broken = join(t.dir, 'truncated.dcm');
      writeFileSync(broken, readFileSync(t.ct[0]!).subarray(0, 3000));
      const r = outsourceCli(broken, t.ct[1]!);
      expect(r.status).toBe(3);
      expect(r.stderr).toMatch(/^refused: .*truncated\.dcm: .*truncated/m);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
      expect(r.stdout.trim()).toMatch(
        /^2 instance\(s\): 0 new, 1 already stored at the cloud, 1 refused in \d+\.\d s$/,
      );
    });

    it('refuses an upload without the hospital integration token', async () => {
      const r = await fetch(`${t.fed.urls.producer}/studies`, {
        method: 'POST',
        headers: {
          'content-type': 'multipart/related; boundary=x',
          authorization: 'Bearer nope-nope-nope-nope',
        },
        body: '--x--',
      });
      expect(r.status).toBe(401);
    });
  });

  describe('consultation', () => {
    it('lists for a physician the studies the policy lets them open, and none for an administrator', async () => {
      const found = await bob.client.search('TREAT', bob.roleAssignments);
      expect(found.studies.map((s) => s.patient.id).sort()).toEqual(
        [t.ctPatient, t.otherPatient].sort(),
      );
      const ct = found.studies.find((s) => s.patient.id === t.ctPatient)!;
      expect(ct.series.reduce((n, s) => n + s.instances, 0)).toBe(t.ct.length);
      // The per-study decisions that filtered the list are logged with their rules.
      const filter = (await t.audit('producer')).findLast((r) => r.subtype === 'search-filter')!;
      expect(filter.actor.id).toBe('dr.bob');
      const decisions = filter.details.decisions as { decision: string; rules: string[] }[];
      expect(decisions).toHaveLength(2);
      expect(decisions.every((d) => d.decision === 'allow' && d.rules.includes('ATTENDING'))).toBe(
        true,
      );
      const erin = await t.clinician('admin.erin');
      await expect(erin.client.search('TREAT')).rejects.toThrow(/denied/);
    });

    it('issues a ticket, and the cloud serves every image with this clinician’s trace, verified and exact', async () => {
      const since = await cloudHead();
      const c = await consultCt();
      expect(c.decision.rules).toEqual(['ATTENDING']);
      const ids = c.series.flatMap((s) => s.instances.map((i) => i.id));
      expect(ids).toHaveLength(t.ct.length);
      const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
      expect([...keys.keys()].sort()).toEqual([...ids].sort());
      const red = await bob.client.redeem(c.ticket);
      expect([...red.images].sort()).toEqual([...ids].sort());

      const resolver = pkiResolver(await t.trust());
      const originals = new Map(
        t.ct.map((f) => {
          const bytes = new Uint8Array(readFileSync(f));
          return [parseDicom(bytes).dataset.text(T.SOPInstanceUID)!, bytes] as const;
        }),
      );
      let n = 0;
      for await (const got of bob.client.retrieve(red.redemption)) {
        n++;
        const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(got.id)! });
        expect(opened.verdict.status).toBe('verified');
        expect(opened.verdict.trace?.id).toBe(c.trace);
        expect(opened.verdict.trace?.signer?.subject).toMatch(/OU=cloud/);
        const restored = opened.restored!;
        const source = originals.get(restored.dataset.text(T.SOPInstanceUID)!)!;
        expect(source, 'restored SOP Instance UID names a source file').toBeDefined();
        const orig = await readPixelData(parseDicom(source));
        expect(Buffer.from(restored.pixels).equals(Buffer.from(orig.data))).toBe(true);
        expect(restored.dataset.text(T.PatientName)).toBe(
          parseDicom(source).dataset.text(T.PatientName),
        );
      }
      expect(n).toBe(ids.length);

      // The producer logged the request before deciding, and the decision before the ticket.
      const p = (await t.audit('producer')).filter((r) => r.actor.id === 'dr.bob');
      const ticketRec = p.find(
        (r) => r.subtype === 'ticket-issued' && r.objects.some((o) => o.id === c.ticket.tid),
      )!;
      const before = p.filter((r) => r.seq < ticketRec.seq);
      const decision = before.findLast((r) => r.subtype === 'policy-decision')!;
      const request = before.findLast((r) => r.subtype === 'request-logged')!;
      expect(request.seq).toBeLessThan(decision.seq);
      // The cloud decided, inserted the trace and logged the release, then the retrieval.
      const cloud = await cloudRecordsAfter(since);
      const traced = cloud.find((r) => r.subtype === 'trace-inserted')!;
      expect(traced.details.traces).toEqual([c.trace]);
      expect(traced.objects.filter((o) => o.type === 'image')).toHaveLength(ids.length);
      expect(cloud.findIndex((r) => r.subtype === 'retrieve')).toBeGreaterThan(
        cloud.indexOf(traced),
      );
    });

    it('traces an image stored before the cloud kept trace bases from its stored bytes', async () => {
      const c = await consultCt();
      const id = c.series[0]!.instances[0]!.id;
      type Instances = { instances: { id: string; trace_basis: string | null } };
      const cloud = await t.database<Instances>('cloud');
      let kept: string | null | undefined;
      try {
        const row = await cloud.db
          .selectFrom('instances')
          .select('trace_basis')
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        kept = row.trace_basis;
        // Sealed bytes, seal signature, where the trace slot lies, the v2 seal digest.
        expect(kept).toMatch(/^[0-9a-f]+\.[0-9a-f]{128}\.\d+:\d+:\d+:\d+:\d+\.[0-9a-f]{64}$/);
        await cloud.db
          .updateTable('instances')
          .set({ trace_basis: null })
          .where('id', '=', id)
          .execute();
        const keys = await bob.client.openKeys(c.ticket, t.resolveProducer);
        const red = await bob.client.redeem(c.ticket);
        const resolver = pkiResolver(await t.trust());
        let seen = 0;
        for await (const got of bob.client.retrieve(red.redemption)) {
          if (got.id !== id) continue;
          seen++;
          const opened = await openProtected(got.bytes, { resolver, imageKey: keys.get(id)! });
          expect(opened.verdict.status).toBe('verified');
          expect(opened.verdict.trace?.id).toBe(c.trace);
        }
        expect(seen).toBe(1);
      } finally {
        if (kept !== undefined)
          await cloud.db
            .updateTable('instances')
            .set({ trace_basis: kept })
            .where('id', '=', id)
            .execute();
        await cloud.close();
      }
    });

    it('denies a consultation the policy does not allow, with the reason, and logs it', async () => {
      await expect(
        alice.client.consult({ patient: t.ctPatient, purpose: 'TREAT' }),
      ).rejects.toThrow(/consultation denied/);
      const last = (await t.audit('producer')).filter((r) => r.actor.id === 'dr.alice').at(-1)!;
      expect(last.subtype).toBe('policy-decision');
      expect(last.outcome).toBe(4);
    });

    it('refuses at the edge a purpose outside the policy’s PurposeOfUse vocabulary', async () => {
      for (const purpose of ['treatment', 'Marketing', 'TREAT ']) {
        const r = bob.client.consult({
          patient: t.ctPatient,
          purpose,
          roleAssignments: bob.roleAssignments,
        });
        await expect(r).rejects.toMatchObject({ status: 400 });
        await expect(r).rejects.toThrow(/purpose/);
      }
    });
  });

  describe('attacks on tickets', () => {
    it('a forged signature', async () => {
      const c = await consultCt();
      await expectRefused(
        () => bob.client.redeem({ ...c.ticket, cloud: alter(c.ticket.cloud, 2) }),
        /signature does not verify/,
      );
    });

    it('an altered cloud part (image list, traces or nonce inside the encrypted payload)', async () => {
      const c = await consultCt();
      await expectRefused(
        () => bob.client.redeem({ ...c.ticket, cloud: alter(c.ticket.cloud, 1) }),
        /forged or altered/,
      );
    });

    it('an image list naming images this producer did not store here', async () => {
      const c = await consultCt();
      const ids = c.series.flatMap((s) => s.instances);
      const ticket = await craftTicket({
        images: [...ids, { id: '00000000-0000-4000-8000-000000000000' }],
      });
      await expectRefused(() => bob.client.redeem(ticket), /did not store here/);
    });

    it('a ticket signed by an organisation that is not a producer', async () => {
      const ticket = await craftTicket({ signer: 'consumer' });
      await expectRefused(() => bob.client.redeem(ticket), /not a producer/);
    });

    it('an expired ticket', async () => {
      const ticket = await craftTicket({ ttlMs: 1000, now: Date.now() - 10_000 });
      await expectRefused(() => bob.client.redeem(ticket), /expired/);
    });

    it('a ticket for another cloud (wrong audience)', async () => {
      const ticket = await craftTicket({ cloudId: 'another-cloud' });
      await expectRefused(() => bob.client.redeem(ticket), /another cloud/);
    });

    it("another clinician's ticket", async () => {
      const c = await consultCt();
      await expectRefused(() => alice.client.redeem(c.ticket), /another device/);
    });

    it('a replayed ticket', async () => {
      const c = await consultCt();
      await bob.client.redeem(c.ticket);
      await expectRefused(() => bob.client.redeem(c.ticket), /replay/, 'ticket-replayed');
    });

    it('a trace the cloud cannot insert: nothing is released, and the ticket stays unspent', async () => {
      const c = await consultCt();
      const id = c.series[0]!.instances[0]!.id;
      const blob = join(t.dir, 'cloud', 'blobs', id.slice(0, 2), id);
      renameSync(blob, `${blob}.away`);
      try {
        await expectRefused(
          () => bob.client.redeem(c.ticket),
          /refuses this redemption/,
          'redemption-denied',
        );
      } finally {
        renameSync(`${blob}.away`, blob);
      }
      const cloud = await t.database<{ redemptions: { ticket: string } }>('cloud');
      try {
        const rows = await cloud.db
          .selectFrom('redemptions')
          .selectAll()
          .where('ticket', '=', c.ticket.tid)
          .execute();
        expect(rows).toHaveLength(0);
      } finally {
        await cloud.close();
      }
      // The obligation can be met again: the same ticket now redeems.
      const red = await bob.client.redeem(c.ticket);
      expect(red.images).toHaveLength(t.ct.length);
    });

    it('a producer removed from the trust group, then revoked: its tickets are refused and its seals no longer verify', async () => {
      const c = await consultCt();
      const served = await consultCt();
      const keys = await bob.client.openKeys(served.ticket, t.resolveProducer);
      const red = await bob.client.redeem(served.ticket);
      const images = [];
      for await (const got of bob.client.retrieve(red.redemption)) images.push(got);
      const image = images[0];
      const pki = await loadPkiDir(t.fed.config.pkiDir);
      const id = {
        cert: readFileSync(join(t.fed.config.pkiDir, 'consumer.pem'), 'utf8'),
        key: readFileSync(join(t.fed.config.pkiDir, 'consumer.key.pem'), 'utf8'),
        pki,
      };
      const admin = (path: string, body: object) =>
        mtlsFetch(`${t.fed.urls.authority}${path}`, id, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${t.fed.secrets.adminToken}`,
          },
          body: JSON.stringify(body),
        });
      const removed = await admin('/admin/trust-group/removals', { member: 'producer' });
      expect(removed.status).toBe(200);
      // Every party refreshes its view of the trust group every 5 s, in the background.
      await new Promise((r) => setTimeout(r, 7_000));
      await expectRefused(() => bob.client.redeem(c.ticket), /not in trust group version \d+/);
      // The hospital's viewer sees the new trust group too: the producer's seal is unverifiable now.
      const now = await fetchTrust(t.fed.urls.consumer);
      expect(now.trustGroup.members.map((m) => m.id)).not.toContain('producer');
      const opened = await openProtected(image!.bytes, {
        resolver: pkiResolver(now),
        imageKey: keys.get(image!.id)!,
      });
      expect(opened.verdict.status).toBe('unverifiable');
      expect(opened.verdict.summary).toMatch(/not in trust group/);

      const serial = pki.organisations
        .find((x) => x.subject.includes('OU=producer'))!
        .serialNumber.toLowerCase();
      const revoked = await admin('/admin/revocations', { serial, reason: 'key compromise' });
      expect(revoked.status).toBe(200);
      await new Promise((r) => setTimeout(r, 7_000));
      await expectRefused(() => bob.client.redeem(c.ticket), /revoked/);
    }, 60_000);
  });

  it('keeps every audit chain intact through all of it', async () => {
    for (const party of ['producer', 'cloud', 'consumer', 'authority'] as const) {
      const records = await t.audit(party);
      expect(records.length).toBeGreaterThan(0);
      for (let i = 0; i < records.length; i++) {
        const { hash, ...rest } = records[i]!;
        expect(recordHash(rest)).toBe(hash);
        if (i > 0) {
          expect(records[i]!.prev).toBe(records[i - 1]!.hash);
          expect(records[i]!.seq).toBe(records[i - 1]!.seq + 1);
        }
      }
    }
  });
});
