// The direct reader of the attributes' CMS envelope against PKI.js, its judge: on every envelope the
// producer writes it gives PKI.js's plaintext; on damaged, truncated or foreign envelopes it either
// gives exactly PKI.js's plaintext too or declines (and PKI.js decides).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../bytes.ts';
import { DataSet } from '../dicom/dataset.ts';
import { T } from '../dicom/tags.ts';
import { attributesKek, encryptAttributes, KEK_ID, openWithPkijs } from './attributes.ts';
import { openKekEnvelope, parseKekEnvelope } from './envelope.ts';

async function envelope(text: string, key: Uint8Array, iv: Uint8Array): Promise<Uint8Array> {
  const originals = new DataSet();
  originals.setText(T.PatientName, 'PN', 'Doe^Jane');
  originals.setText(0x00104000, 'LT', text); // Patient Comments: any length
  const el = await encryptAttributes(originals, [T.PatientIdentityRemoved], key, iv);
  return el.items![0]!.get(T.EncryptedContent)!.value!;
}

const judge = async (content: Uint8Array, kek: Uint8Array): Promise<Uint8Array | string> =>
  openWithPkijs(content, kek).catch((e: unknown) => `refused: ${(e as Error).message}`);

describe('the attributes envelope, read directly', () => {
  it('opens every envelope the producer writes exactly as PKI.js does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5000 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        async (n, key, iv) => {
          const content = await envelope('x'.repeat(n), key, iv);
          const kek = attributesKek(key, iv);
          const direct = openKekEnvelope(content, kek);
          expect(direct).toBeDefined();
          expect(
            Buffer.from(direct!).equals(Buffer.from((await judge(content, kek)) as Uint8Array)),
          ).toBe(true);
          // A wrong key is declined here and refused by PKI.js.
          const wrong = kek.slice();
          wrong[0]! ^= 1;
          expect(openKekEnvelope(content, wrong)).toBeUndefined();
          expect(await judge(content, wrong)).toMatch(/^refused/);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('on damaged or truncated envelopes gives PKI.js plaintext or declines', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(16));
    const long = await envelope('y'.repeat(2500), key, iv); // three 1024-byte pieces
    const short = await envelope('', key, iv);
    const kek = attributesKek(key, iv);
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        fc.constantFrom('flip', 'truncate', 'append', 'byte'),
        fc.nat(255),
        async (useLong, at0, bit, how, value) => {
          const base = useLong ? long : short;
          const at = at0 % base.length;
          let damaged: Uint8Array;
          if (how === 'flip') {
            damaged = base.slice();
            damaged[at]! ^= 1 << bit;
          } else if (how === 'byte') {
            damaged = base.slice();
            damaged[at] = value;
          } else if (how === 'truncate') damaged = base.slice(0, at);
          else damaged = new Uint8Array([...base, value, value]);
          const direct = openKekEnvelope(damaged, kek);
          if (direct === undefined) return;
          accepted++;
          const judged = await judge(damaged, kek);
          expect(typeof judged).not.toBe('string');
          expect(Buffer.from(direct).equals(Buffer.from(judged as Uint8Array))).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
    // Flips inside the encrypted content still decrypt (CBC has no integrity: the seal has it).
    expect(accepted).toBeGreaterThan(0);
  });

  it("reads openssl's own envelope for the same key the same way as PKI.js, or declines", async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(16));
    const kek = attributesKek(key, iv);
    const dir = mkdtempSync(join(tmpdir(), 'ztv-env-'));
    try {
      writeFileSync(join(dir, 'plain'), 'attributes from another writer');
      execFileSync('openssl', [
        'cms',
        '-encrypt',
        '-binary',
        '-aes256',
        '-secretkey',
        toHex(kek),
        '-secretkeyid',
        toHex(KEK_ID),
        '-in',
        join(dir, 'plain'),
        '-outform',
        'DER',
        '-out',
        join(dir, 'env.der'),
      ]);
      const content = new Uint8Array(readFileSync(join(dir, 'env.der')));
      const judged = await judge(content, kek);
      const direct = openKekEnvelope(content, kek);
      if (direct !== undefined)
        expect(Buffer.from(direct).equals(Buffer.from(judged as Uint8Array))).toBe(true);
      expect(new TextDecoder().decode(judged as Uint8Array)).toBe('attributes from another writer');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses the shape of the envelope it was built for, and nothing else', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(16));
    const content = await envelope('z', key, iv);
    const env = parseKekEnvelope(content);
    expect(env?.wrappedKey.length).toBe(40);
    expect(env?.iv.length).toBe(16);
    expect(parseKekEnvelope(new Uint8Array(0))).toBeUndefined();
    expect(parseKekEnvelope(Uint8Array.of(0x30, 0x80, 0, 0))).toBeUndefined();
    expect(openKekEnvelope(content, new Uint8Array(16))).toBeUndefined();
  });
});
