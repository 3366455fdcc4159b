// Blind tickets: the cloud learns image ids and traces but no key; the device learns keys; every
// attack — forgery, alteration, expiry, wrong audience, another device, stripped and re-signed
// signature, a key that is not the reader's — is refused with its reason.
import { CompactEncrypt, CompactSign, decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromUtf8, toHex, utf8 } from '../bytes.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../crypto/keys.ts';
import { isZtvError } from '../errors.ts';
import {
  issueTicket,
  openCloudPart,
  openKeysPart,
  type OpenOptions,
  type Ticket,
} from './ticket.ts';

const ecdh = () =>
  crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, [
    'deriveBits',
  ]) as Promise<CryptoKeyPair>;

let producer: SigningKey;
let rogue: SigningKey;
let cloudKeys: CryptoKeyPair;
let deviceKeys: CryptoKeyPair;
let ticket: Ticket;
const images = [
  {
    id: 'img-1',
    key: crypto.getRandomValues(new Uint8Array(32)),
    trace: crypto.getRandomValues(new Uint8Array(32)),
  },
  {
    id: 'img-2',
    key: crypto.getRandomValues(new Uint8Array(16)),
    trace: crypto.getRandomValues(new Uint8Array(32)),
  },
];

const resolve = (kid: string) => {
  if (kid === producer.publicKey.keyIdHex)
    return Promise.resolve({ producerId: 'producer-a', key: producer.publicKey });
  if (kid === rogue.publicKey.keyIdHex)
    return Promise.resolve({ producerId: 'producer-b', key: rogue.publicKey });
  return Promise.reject(new Error(`unknown producer key ${kid}`));
};
const cloudOpts = (over: Partial<OpenOptions & { cloudId: string; deviceId: string }> = {}) => ({
  resolveProducer: resolve,
  decryptionKey: cloudKeys.privateKey,
  cloudId: 'cloud-1',
  deviceId: 'device-x',
  ...over,
});

async function reason(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isZtvError(e) && e.code).toBe('ticket');
  return (e as Error).message;
}

beforeAll(async () => {
  producer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  rogue = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  cloudKeys = await ecdh();
  deviceKeys = await ecdh();
  ticket = await issueTicket({
    producer,
    producerId: 'producer-a',
    cloudId: 'cloud-1',
    cloudEncryptionKey: cloudKeys.publicKey,
    deviceId: 'device-x',
    deviceEncryptionKey: deviceKeys.publicKey,
    images,
    ttlMs: 600_000,
    purpose: 'TREAT',
  });
});

describe('blind tickets', () => {
  it('the cloud gets ids, traces and a nonce — and no key', async () => {
    const c = await openCloudPart(ticket.cloud, cloudOpts());
    expect(c.images).toEqual(images.map((i) => ({ id: i.id, trace: toHex(i.trace) })));
    expect(c.tid).toBe(ticket.tid);
    expect(c.nonce).toMatch(/^[0-9a-f]{32}$/);
    const text = JSON.stringify(c);
    for (const i of images) expect(text).not.toContain(Buffer.from(i.key).toString('base64url'));
    // The device's part is not for the cloud.
    expect(
      await reason(
        openKeysPart(ticket.keys, {
          resolveProducer: resolve,
          decryptionKey: cloudKeys.privateKey,
          deviceId: 'device-x',
        }),
      ),
    ).toMatch(/not encrypted to this reader/);
  });

  it('the device gets exactly the image keys, with its non-extractable key', async () => {
    const { keys, claims } = await openKeysPart(ticket.keys, {
      resolveProducer: resolve,
      decryptionKey: deviceKeys.privateKey,
      deviceId: 'device-x',
    });
    expect(claims.tid).toBe(ticket.tid);
    expect([...keys.keys()]).toEqual(['img-1', 'img-2']);
    expect(keys.get('img-2')).toEqual(images[1]!.key);
    expect(deviceKeys.privateKey.extractable).toBe(false);
  });

  it('refuses an altered or forged ticket', async () => {
    const [h, p, s] = ticket.cloud.split('.');
    const flipped = `${h}.${p!.slice(0, 10)}${p![10] === 'A' ? 'B' : 'A'}${p!.slice(11)}.${s}`;
    expect(await reason(openCloudPart(flipped, cloudOpts()))).toMatch(/forged or altered/);
    const badSig = `${h}.${p}.${s!.slice(0, -3)}${s!.slice(-3) === 'AAA' ? 'BBB' : 'AAA'}`;
    expect(await reason(openCloudPart(badSig, cloudOpts()))).toMatch(/forged or altered/);
    expect(await reason(openCloudPart('not-a-ticket', cloudOpts()))).toMatch(/not a JWS/);
  });

  it('refuses a signature stripped and replaced by another trusted producer', async () => {
    const jwe = fromUtf8(Buffer.from(ticket.cloud.split('.')[1]!, 'base64url'));
    const resigned = await new CompactSign(new TextEncoder().encode(jwe))
      .setProtectedHeader({
        alg: 'ES256',
        typ: decodeProtectedHeader(ticket.cloud).typ,
        kid: rogue.publicKey.keyIdHex,
      })
      .sign(rogue.cryptoKey);
    expect(await reason(openCloudPart(resigned, cloudOpts()))).toMatch(
      /another producer than its issuer/,
    );
  });

  it('refuses an expired ticket, another cloud, another device', async () => {
    expect(
      await reason(openCloudPart(ticket.cloud, cloudOpts({ now: ticket.expiresAt + 1 }))),
    ).toMatch(/expired/);
    expect(await reason(openCloudPart(ticket.cloud, cloudOpts({ cloudId: 'cloud-2' })))).toMatch(
      /another cloud/,
    );
    expect(await reason(openCloudPart(ticket.cloud, cloudOpts({ deviceId: 'device-y' })))).toMatch(
      /another device/,
    );
    expect(
      await reason(
        openKeysPart(ticket.keys, {
          resolveProducer: resolve,
          decryptionKey: deviceKeys.privateKey,
          deviceId: 'device-y',
        }),
      ),
    ).toMatch(/another device/);
  });

  it('refuses the parts swapped (types are bound)', async () => {
    expect(await reason(openCloudPart(ticket.keys, cloudOpts()))).toMatch(
      /expected ztv-ticket-cloud/,
    );
  });

  it('carries the purpose of use the producer allowed, as a PurposeOfUse code, and nothing else', async () => {
    expect((await openCloudPart(ticket.cloud, cloudOpts())).purpose).toBe('TREAT');
    // The producer cannot issue a ticket for a free-text purpose …
    await expect(
      issueTicket({
        producer,
        producerId: 'producer-a',
        cloudId: 'cloud-1',
        cloudEncryptionKey: cloudKeys.publicKey,
        deviceId: 'device-x',
        deviceEncryptionKey: deviceKeys.publicKey,
        images,
        ttlMs: 1000,
        purpose: 'marketing',
      }),
    ).rejects.toThrow(/PurposeOfUse code/);
    // … and the cloud refuses a correctly signed cloud part that states one (or none).
    for (const purpose of ['marketing', undefined]) {
      const c = await openCloudPart(ticket.cloud, cloudOpts());
      const claims = { ...c, purpose };
      const jwe = await new CompactEncrypt(utf8(JSON.stringify(claims)))
        .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'json' })
        .encrypt(cloudKeys.publicKey);
      const part = await new CompactSign(utf8(jwe))
        .setProtectedHeader({
          alg: 'ES256',
          typ: decodeProtectedHeader(ticket.cloud).typ,
          kid: producer.publicKey.keyIdHex,
        })
        .sign(producer.cryptoKey);
      expect(await reason(openCloudPart(part, cloudOpts()))).toMatch(
        /states no purpose of use \(an HL7 v3 PurposeOfUse code\)/,
      );
    }
  });

  it('an untrusted signer is refused by the resolver', async () => {
    const other = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
    const t = await issueTicket({
      producer: other,
      producerId: 'producer-a',
      cloudId: 'cloud-1',
      cloudEncryptionKey: cloudKeys.publicKey,
      deviceId: 'device-x',
      deviceEncryptionKey: deviceKeys.publicKey,
      images,
      ttlMs: 1000,
      purpose: 'TREAT',
    });
    await expect(openCloudPart(t.cloud, cloudOpts())).rejects.toThrow(/unknown producer key/);
  });
});
