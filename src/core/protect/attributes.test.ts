// The Encrypted Attributes Sequence is standard CMS: openssl opens it with the KEK derived from the
// image key, and a wrong key does not.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toHex } from '../bytes.ts';
import { DataSet } from '../dicom/dataset.ts';
import { parseDicom } from '../dicom/parse.ts';
import { T, TS } from '../dicom/tags.ts';
import { attributesKek, decryptAttributes, encryptAttributes, KEK_ID } from './attributes.ts';

describe('encrypted attributes', () => {
  const originals = new DataSet();
  originals.setText(T.PatientName, 'PN', 'Doe^Jane');
  originals.setText(T.PatientID, 'LO', 'MRN-0042');
  const key = crypto.getRandomValues(new Uint8Array(32));
  const iv = crypto.getRandomValues(new Uint8Array(16));

  it('round-trips originals and added tags', async () => {
    const ds = new DataSet();
    ds.set(await encryptAttributes(originals, [T.PatientIdentityRemoved], key, iv));
    const back = await decryptAttributes(ds, key, iv);
    expect(back.originals.text(T.PatientName)).toBe('Doe^Jane');
    expect(back.added).toEqual([T.PatientIdentityRemoved]);
    const wrong = key.slice();
    wrong[3]! ^= 0x10;
    await expect(decryptAttributes(ds, wrong, iv)).rejects.toThrow(/do not decrypt/);
  });

  it('is CMS EnvelopedData that openssl decrypts with the derived KEK', async () => {
    const el = await encryptAttributes(originals, [], key, iv);
    const cms = el.items![0]!.get(T.EncryptedContent)!.value!;
    const dir = mkdtempSync(join(tmpdir(), 'ztv-cms-'));
    try {
      writeFileSync(join(dir, 'a.der'), cms);
      const plain = execFileSync('openssl', [
        'cms',
        '-decrypt',
        '-inform',
        'DER',
        '-in',
        join(dir, 'a.der'),
        '-secretkey',
        toHex(attributesKek(key, iv)),
        '-secretkeyid',
        toHex(KEK_ID),
      ]);
      const inner = parseDicom(new Uint8Array(plain), 'cms', {
        bareSyntax: TS.ExplicitLittle,
      }).dataset;
      const item = inner.get(T.ModifiedAttributesSequence)!.items![0]!;
      expect(item.text(T.PatientID)).toBe('MRN-0042');
      expect(() =>
        execFileSync(
          'openssl',
          [
            'cms',
            '-decrypt',
            '-inform',
            'DER',
            '-in',
            join(dir, 'a.der'),
            '-secretkey',
            toHex(crypto.getRandomValues(new Uint8Array(32))),
            '-secretkeyid',
            toHex(KEK_ID),
          ],
          { stdio: 'pipe' },
        ),
      ).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
