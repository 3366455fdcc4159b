// Root pinning: a build-time fingerprint wins and must match; a device keeps the root it was enrolled
// under; first use takes the served root — and the enrollment chain must lead to it.
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import type { TrustMaterial } from '../../core/client/federation.ts';
import {
  createCsr,
  generateEncryptionKeys,
  generateSigningKeys,
  issueDeviceFromCsr,
} from '../../core/pki/issue.ts';
import { testTrust, type TestTrust } from '../../../test/pipeline.ts';
import { buildPin, checkEnrolmentChain, choosePin } from './pin.ts';

let a: TestTrust;
let b: TestTrust;
const material = (t: TestTrust): TrustMaterial => ({
  root: t.bundle.root,
  intermediates: t.bundle.intermediates,
  organisations: t.bundle.organisations,
  crls: t.bundle.crls,
  trustGroup: t.bundle.trustGroup,
});

beforeAll(async () => {
  a = await testTrust();
  b = await testTrust();
});

describe('pinning the federation root', () => {
  it('has no build pin under the tests', () => {
    expect(buildPin()).toBeUndefined();
  });

  it('takes the served root on first use, then holds the device to it', async () => {
    expect(await choosePin(material(a), undefined, undefined)).toEqual({
      sha256: a.bundle.rootSha256,
      source: 'first-use',
    });
    expect(await choosePin(material(a), a.bundle.rootSha256, undefined)).toMatchObject({
      source: 'device',
    });
    await expect(choosePin(material(b), a.bundle.rootSha256, undefined)).rejects.toThrow(
      /root changed since this device was enrolled/,
    );
  });

  it('prefers the fingerprint built into the viewer, and refuses anything else', async () => {
    expect(await choosePin(material(a), undefined, a.bundle.rootSha256)).toMatchObject({
      source: 'build',
    });
    await expect(choosePin(material(b), undefined, a.bundle.rootSha256)).rejects.toThrow(
      /another federation root than the one this viewer was built to trust/,
    );
    await expect(
      choosePin(material(a), toHex(new Uint8Array(32)), a.bundle.rootSha256),
    ).rejects.toThrow(/enrolled under another federation root/);
  });

  it('checks at enrollment that the device chain leads to the root being pinned', async () => {
    const signing = await generateSigningKeys();
    const enc = await generateEncryptionKeys();
    const csr = await createCsr(signing, enc.publicKey, 'device');
    const ca = a.pki.hospitalCas['consumer-ca'];
    const cert = await issueDeviceFromCsr(
      { cert: ca.cert, privateKey: ca.keys.privateKey },
      csr,
      { id: 'dr.x', role: 'physician', domain: '1.3.6.1.4.1.32473.71.2.3' },
      'Riverside',
    );
    const chain = [cert.toString('pem'), ca.cert.toString('pem')];
    await expect(checkEnrolmentChain(material(a), chain)).resolves.toBeUndefined();
    await expect(checkEnrolmentChain(material(b), chain)).rejects.toThrow(
      /does not lead to the federation root/,
    );
  });
});
