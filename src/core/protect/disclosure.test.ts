// Disclosure bound to purpose (issue 16 §4), on a real CT image that names its patient: the pixels are encrypted under the
// pixel key K_p = HKDF(K_i), the identifying attributes under K_i. K_i restores everything; K_p (what
// a ticket for research carries) restores verified pixels and the pseudonymised header only — it
// cannot open the Encrypted Attributes Sequence, and what it writes is valid DICOM (DCMTK, GDCM)
// holding no identifier of the source. Images sealed before K_p existed (format 1 and 2, flag clear)
// still open with K_i exactly as before, and their K_p opens nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { randomBytes, utf8 } from '../bytes.ts';
import { parseDicom } from '../dicom/parse.ts';
import { T } from '../dicom/tags.ts';
import { isZtvError } from '../errors.ts';
import { decryptAttributes } from './attributes.ts';
import { FLAG_PIXEL_KEY } from './container.ts';
import {
  openProtected,
  pixelKey,
  protect,
  readProtected,
  traceIdFrom,
  traceProtected,
} from './index.ts';

const SOURCE = 'small/CT_small.dcm';

let keys: TestKeys;
let source: Uint8Array;
let name: string;
let id: string;
let served: Uint8Array;
let imageKey: Uint8Array;
let dir: string;

const contains = (hay: Uint8Array, needle: string): boolean =>
  Buffer.from(hay).includes(Buffer.from(utf8(needle)));

beforeAll(async () => {
  keys = await testKeys();
  source = new Uint8Array(readFileSync(samplePath(SOURCE)));
  const ds = parseDicom(source).dataset;
  name = ds.text(T.PatientName) ?? '';
  id = ds.text(T.PatientID) ?? '';
  const p = await protect(source, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
  imageKey = p.imageKey;
  served = await traceProtected(p.bytes, { signer: keys.cloud, traceId: traceIdFrom('T-16') });
  dir = mkdtempSync(join(tmpdir(), 'ztv-disclosure-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('disclosure bound to purpose', () => {
  it('the sample identifies its patient, and the served image does not in clear', () => {
    expect(name.length).toBeGreaterThan(3);
    expect(id.length).toBeGreaterThan(3);
    expect(contains(source, id)).toBe(true);
    expect(contains(served, id)).toBe(false);
    expect(readProtected(served).container!.fields.flags & FLAG_PIXEL_KEY).toBe(FLAG_PIXEL_KEY);
  });

  it('the image key restores the identity, verified', async () => {
    const o = await openProtected(served, { resolver: keys.resolver, imageKey });
    expect(o.verdict.status).toBe('verified');
    expect(o.verdict.disclosure).toBe('identified');
    expect(o.restored!.identity).toBe(true);
    expect(o.restored!.dataset.text(T.PatientName)).toBe(name);
    expect(o.restored!.dataset.text(T.PatientID)).toBe(id);
    expect(o.verdict.checks.find((c) => c.id === 'header.original')?.result).toBe('pass');
  });

  it('the pixel key restores the verified pixels and the pseudonymised header only', async () => {
    const full = await openProtected(served, { resolver: keys.resolver, imageKey });
    const kp = pixelKey(imageKey);
    const o = await openProtected(served, { resolver: keys.resolver, imageKey: kp });
    expect(o.verdict.status).toBe('verified');
    expect(o.verdict.disclosure).toBe('pseudonymised');
    expect(o.verdict.summary).toMatch(/pseudonymised header check out; the identity is withheld$/);
    const result = (id: string) => o.verdict.checks.find((c) => c.id === id)?.result;
    expect(result('pixels.original')).toBe('pass');
    expect(result('header.protected')).toBe('pass');
    expect(result('attributes.decrypt')).toBe('skipped');
    expect(result('header.original')).toBe('skipped');
    const r = o.restored!;
    expect(r.identity).toBe(false);
    expect(Buffer.from(r.pixels).equals(Buffer.from(full.restored!.pixels))).toBe(true);
    expect(r.dataset.has(T.EncryptedAttributesSequence)).toBe(false);
    expect(r.dataset.text(T.PatientName)).not.toBe(name);
    expect(r.dataset.text(T.PatientID)).not.toBe(id);

    // What a researcher may save: valid DICOM, no identifier of the source in it.
    const file = r.file();
    expect(contains(file, name)).toBe(false);
    expect(contains(file, id)).toBe(false);
    const path = join(dir, 'research.dcm');
    writeFileSync(path, file);
    const dump = spawnSync('dcmdump', ['-q', path], { encoding: 'utf8' });
    expect(dump.status).toBe(0);
    expect(dump.stderr + dump.stdout).not.toMatch(/^[WEF]:/m);
    const full2 = spawnSync('dcmdump', [path], { encoding: 'utf8' });
    expect(full2.stdout).toContain('(7fe0,0010) OW');
    expect(full2.stdout).not.toContain(id);
    const info = spawnSync('gdcminfo', ['-W', '-E', '-i', path], { encoding: 'utf8' });
    expect(info.status).toBe(0);
    expect(info.stderr).toBe('');
    expect(info.stdout).toMatch(
      /MediaStorage is 1\.2\.840\.10008\.5\.1\.4\.1\.1\.2 \[CT Image Storage\]/,
    );
  });

  it('a holder of the pixel key cannot open the Encrypted Attributes Sequence', async () => {
    const img = readProtected(served);
    const iv = img.container!.fields.iv;
    const kp = pixelKey(imageKey);
    await expect(decryptAttributes(img.dataset, kp, iv)).rejects.toThrow();
    // The image key opens it: the refusal is the key's, not the sequence's.
    const a = await decryptAttributes(img.dataset, imageKey, iv);
    expect(a.originals.text(T.PatientID)).toBe(id);
  });

  it('with the pixel key, altered pixels or an altered clear header are tampering', async () => {
    const kp = pixelKey(imageKey);
    // Pixel data ends the file: a bit of the ciphertext, far from the container.
    const pixels = served.slice();
    pixels[pixels.length - 1001]! ^= 0x10;
    const o = await openProtected(pixels, { resolver: keys.resolver, imageKey: kp });
    expect(o.verdict.status).toBe('tampered');
    expect(o.verdict.tampered).toContain('pixels');

    // The clear header's pseudonymised Patient's Name, rewritten in place (same length).
    const header = served.slice();
    const at = Buffer.from(header).indexOf(Buffer.from(utf8('ANONYMIZED')));
    expect(at).toBeGreaterThan(0);
    header[at] = 'B'.charCodeAt(0);
    const h = await openProtected(header, { resolver: keys.resolver, imageKey: kp });
    expect(h.verdict.status).toBe('tampered');
    expect(h.verdict.checks.find((c) => c.id === 'header.protected')?.result).toBe('fail');
  });

  it('a key that is neither K_i nor K_p is refused as the wrong key', async () => {
    const e = await openProtected(served, {
      resolver: keys.resolver,
      imageKey: randomBytes(32),
    }).catch((x: unknown) => x);
    expect(isZtvError(e) && e.code).toBe('wrong-key');
  });

  it.each([1, 2] as const)(
    'an image sealed before the pixel key (format %i) opens with K_i as before; its K_p opens nothing',
    async (format) => {
      const p = await protect(source, {
        signer: keys.producer,
        pseudonymKey: keys.pseudonymKey,
        format,
        pixelKey: false,
      });
      const old = await traceProtected(p.bytes, { signer: keys.cloud, traceId: traceIdFrom('O') });
      const c = readProtected(old).container!;
      expect(c.fields.version).toBe(format);
      expect(c.fields.flags & FLAG_PIXEL_KEY).toBe(0);
      const o = await openProtected(old, { resolver: keys.resolver, imageKey: p.imageKey });
      expect(o.verdict.status).toBe('verified');
      expect(o.verdict.disclosure).toBe('identified');
      expect(o.restored!.dataset.text(T.PatientID)).toBe(id);
      const e = await openProtected(old, {
        resolver: keys.resolver,
        imageKey: pixelKey(p.imageKey),
      }).catch((x: unknown) => x);
      expect(isZtvError(e) && e.code).toBe('wrong-key');
    },
  );
});
