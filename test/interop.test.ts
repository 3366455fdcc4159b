// Other toolkits read what we write: pydicom decodes the protected file and the restored original
// (which must give the same pixel array as the source), and DCMTK's dcmftest accepts both as Part 10.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openProtected, protect, traceIdFrom, traceProtected } from '../src/core/protect/index.ts';
import { testKeys, type TestKeys } from './keys.ts';
import { REPO_ROOT, samplePath } from './samples.ts';

interface Seen {
  transferSyntax: string;
  shape: number[];
  dtype: string;
  pixels: string;
  patientName: string;
  patientIdentityRemoved: string;
}

const pydicom = (...files: string[]): Seen[] =>
  JSON.parse(
    execFileSync('/usr/bin/python3', [join(REPO_ROOT, 'test/pydicom_read.py'), ...files], {
      encoding: 'utf8',
    }),
  ) as Seen[];

// Sources pydicom can decode without optional plugins: native and RLE.
const FILES = [
  'series/ct_chest_LIDC-IDRI-0314/000002.dcm',
  'small/CT_small.dcm',
  'small/MR_small_bigendian.dcm',
  'small/SC_rgb.dcm',
  'small/color-pl.dcm',
  'small/emri_small_RLE.dcm',
  'small/gdcm-CR-MONO1-10-chest.dcm',
  'small/SC_ybr_full_422_uncompressed.dcm',
  'small/parametric_map_float.dcm',
  'odd/12bitSigned_0x0F0F.dcm',
];

let keys: TestKeys;
let dir: string;
beforeAll(async () => {
  keys = await testKeys();
  dir = mkdtempSync(join(tmpdir(), 'ztv-interop-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pydicom and DCMTK read protected and restored files', () => {
  it.each(FILES)('%s', async (rel) => {
    const input = new Uint8Array(readFileSync(samplePath(rel)));
    const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
    const traced = await traceProtected(p.bytes, {
      signer: keys.cloud,
      traceId: traceIdFrom('interop'),
    });
    const opened = await openProtected(traced, { resolver: keys.resolver, imageKey: p.imageKey });
    const name = rel.replace(/\W/g, '_');
    const [prot, rest] = [join(dir, `${name}.p.dcm`), join(dir, `${name}.o.dcm`)];
    writeFileSync(prot, traced);
    writeFileSync(rest, opened.restored!.file());

    const [src, seenProt, seenRest] = pydicom(samplePath(rel), prot, rest);
    expect(seenProt!.transferSyntax).toBe('1.2.840.10008.1.2.1');
    expect(seenProt!.shape).toEqual(src!.shape);
    expect(seenProt!.pixels).not.toBe(src!.pixels);
    expect(seenProt!.patientIdentityRemoved).toBe('YES');
    expect(seenRest!.transferSyntax).toBe('1.2.840.10008.1.2.1');
    expect(seenRest!.pixels).toBe(src!.pixels);
    expect(seenRest!.dtype).toBe(src!.dtype);
    expect(seenRest!.patientName).toBe(src!.patientName);

    const dcmftest = execFileSync('dcmftest', [prot, rest], { encoding: 'utf8' });
    expect(dcmftest.trim().split('\n')).toEqual([`yes: ${prot}`, `yes: ${rest}`]);
    execFileSync('dcmdump', ['-q', '+E', prot], { stdio: 'pipe' }); // throws on a parse error
  });
});
