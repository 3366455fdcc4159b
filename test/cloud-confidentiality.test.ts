// The cloud never receives a key or plaintext. The whole demo runs — outsourcing, consultations by
// two clinicians, redemptions, traced retrievals — with the cloud recording every request body it
// receives (as it arrived, and each session operation once opened); then every byte the cloud
// stored (its database files and blobs), every recorded body and every line it printed is scanned
// for the image keys, the producer's secrets, the devices' private keys, runs of original pixels
// and the patients' identifying values. Positive controls prove the scan finds each of them where
// they do appear.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toBase64Url, toHex } from '../src/core/bytes.ts';
import { pemDecode } from '../src/core/crypto/keys.ts';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { readPixelData } from '../src/core/dicom/pixels.ts';
import { identifyingValues } from './identifiers.ts';
import { startTestFederation, type TestFederation } from './federation.ts';

/** Every regular file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** The ways a secret can be written down: raw, hex (both cases), base64 and base64url. */
function encodings(secret: Uint8Array): Buffer[] {
  const raw = Buffer.from(secret);
  return [
    raw,
    Buffer.from(toHex(secret)),
    Buffer.from(toHex(secret).toUpperCase()),
    Buffer.from(raw.toString('base64').replace(/=+$/, '')),
    Buffer.from(toBase64Url(secret)),
  ];
}

/** 16-byte runs of original pixels that carry content (not flat background). */
function pixelRuns(pixels: Uint8Array): Set<string> {
  const runs = new Set<string>();
  for (let i = 0; i + 16 <= pixels.length; i++) {
    const w = pixels.subarray(i, i + 16);
    if (new Set(w).size >= 6) runs.add(Buffer.from(w).toString('latin1'));
  }
  return runs;
}

function sharedRuns(haystack: Buffer, runs: Set<string>): number {
  let n = 0;
  for (let i = 0; i + 16 <= haystack.length; i++)
    if (runs.has(haystack.toString('latin1', i, i + 16))) n++;
  return n;
}

describe('what the cloud stores, receives and prints', () => {
  let t: TestFederation;
  const secrets = new Map<string, Uint8Array>();
  let haystack: { name: string; bytes: Buffer }[] = [];
  let runs: Set<string>;
  let identifiers: { tag: number; value: string }[] = [];
  let retrieved = 0;

  beforeAll(async () => {
    t = await startTestFederation({ capture: true, slices: 3 });
    const bob = await t.clinician('dr.bob');
    const alice = await t.clinician('dr.alice');
    for (const [who, patient, purpose] of [
      [bob, t.ctPatient, 'TREAT'],
      [bob, t.otherPatient, 'TREAT'],
      [alice, t.ctPatient, 'HRESCH'],
    ] as const) {
      const c = await who.client.consult({
        patient,
        purpose,
        roleAssignments: who.roleAssignments,
      });
      for (const [id, key] of await who.client.openKeys(c.ticket, t.resolveProducer))
        secrets.set(`image key of ${id}`, key);
      const red = await who.client.redeem(c.ticket);
      for await (const got of who.client.retrieve(red.redemption)) retrieved += got.bytes.length;
    }
    for (const who of [bob, alice]) {
      const pkcs8 = new Uint8Array(
        await crypto.subtle.exportKey('pkcs8', who.device.encryption.privateKey),
      );
      secrets.set(`${who.user} device decryption key`, pkcs8);
      const jwk = await crypto.subtle.exportKey('jwk', who.device.signing.privateKey);
      secrets.set(`${who.user} device signing key`, Buffer.from(jwk.d!, 'base64url'));
    }
    const pki = t.fed.config.pkiDir;
    secrets.set(
      'producer key-encryption key',
      fromHex(readFileSync(join(t.dir, 'producer', 'kek.hex'), 'utf8').trim()),
    );
    secrets.set(
      'producer pseudonym key',
      fromHex(readFileSync(join(pki, 'producer.pseudonym.key'), 'utf8').trim()),
    );
    secrets.set(
      'producer signing key',
      pemDecode(readFileSync(join(pki, 'producer.key.pem'), 'utf8'), 'PRIVATE KEY'),
    );

    const originals = [...t.ct, ...t.other].map((f) => parseDicom(new Uint8Array(readFileSync(f))));
    runs = new Set();
    for (const o of originals)
      for (const r of pixelRuns((await readPixelData(o)).data)) runs.add(r);
    identifiers = originals.flatMap((o) => identifyingValues(o.dataset));

    haystack = [
      ...filesUnder(join(t.dir, 'cloud')).map((f) => ({ name: f, bytes: readFileSync(f) })),
      ...filesUnder(join(t.dir, 'cloud-capture')).map((f) => ({
        name: f,
        bytes: readFileSync(f),
      })),
      { name: 'cloud output', bytes: Buffer.from((t.output.get('cloud') ?? []).join('\n')) },
    ];
  }, 240_000);
  afterAll(async () => {
    await t?.close();
  });

  it('covers what it should: the database, every blob, every upload and every redemption', () => {
    const names = haystack.map((h) => h.name);
    expect(names.some((n) => /cloud\.sqlite/.test(n))).toBe(true);
    expect(names.filter((n) => /\/blobs\//.test(n))).toHaveLength(t.ct.length + t.other.length);
    expect(names.filter((n) => /-internal\.body$/.test(n)).length).toBeGreaterThanOrEqual(
      t.ct.length + t.other.length,
    );
    expect(names.filter((n) => /-op-redeem\.json$/.test(n))).toHaveLength(3);
    expect(names.filter((n) => /-op-retrieve\.json$/.test(n))).toHaveLength(3);
    expect(retrieved).toBeGreaterThan(1_000_000);
    expect(secrets.size).toBeGreaterThan(t.ct.length + 6);
    expect(runs.size).toBeGreaterThan(100_000);
    expect(identifiers.length).toBeGreaterThan(10);
  });

  it('holds no image key, producer secret or device private key in any encoding', () => {
    const found: string[] = [];
    for (const [what, secret] of secrets)
      for (const enc of encodings(secret))
        for (const h of haystack) if (h.bytes.includes(enc)) found.push(`${what} in ${h.name}`);
    expect(found).toEqual([]);
  });

  it('holds no 16-byte run of original pixels', () => {
    const found = haystack
      .map((h) => ({ name: h.name, n: sharedRuns(h.bytes, runs) }))
      .filter((x) => x.n > 0);
    expect(found).toEqual([]);
  });

  it('holds no identifying value of any patient', () => {
    const found: string[] = [];
    for (const { tag, value } of identifiers)
      for (const h of haystack)
        if (h.bytes.includes(Buffer.from(value, 'latin1')))
          found.push(`${tag.toString(16)} in ${h.name}`);
    expect(found).toEqual([]);
  });

  it("leaves no key or patient identifier in any party's audit log or output", async () => {
    const found: string[] = [];
    for (const party of ['authority', 'producer', 'cloud', 'consumer'] as const) {
      const log = Buffer.from(
        [
          ...(await t.audit(party)).map((r) => JSON.stringify(r)),
          ...(t.output.get(party) ?? []),
        ].join('\n'),
      );
      for (const { tag, value } of identifiers)
        if (log.includes(Buffer.from(value, 'latin1')))
          found.push(`${tag.toString(16)} in ${party}'s log`);
      for (const [what, secret] of secrets)
        for (const enc of encodings(secret))
          if (log.includes(enc)) found.push(`${what} in ${party}'s log`);
    }
    expect(found).toEqual([]);
  });

  it('would have found each of them where they are (positive controls)', () => {
    const source = readFileSync(t.ct[0]!);
    expect(sharedRuns(source, runs)).toBeGreaterThan(10_000);
    const ids = identifyingValues(parseDicom(new Uint8Array(source)).dataset);
    expect(ids.every(({ value }) => source.includes(Buffer.from(value, 'latin1')))).toBe(true);
    const [what, key] = [...secrets][0]!;
    const planted = Buffer.concat([Buffer.from('{"k":"'), encodings(key)[4]!, Buffer.from('"}')]);
    expect(
      encodings(key).some((e) => planted.includes(e)),
      what,
    ).toBe(true);
  });
});
