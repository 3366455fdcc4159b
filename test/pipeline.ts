/**
 * Test helpers of the viewer's decode pipeline (unit and browser tests): a throw-away federation PKI
 * — root, producer and cloud certificates, CRLs and the signed trust group as a worker TrustBundle,
 * with the producer's and the cloud's signing keys to protect and trace images that then verify
 * through the real chain —, tickets that hand image keys to the workers the way the viewer does, and
 * the real decode job behind a worker-shaped object.
 */
import { randomBytes, toHex } from '../src/core/bytes.ts';
import { signingKeyFromCryptoKeys, type SigningKey } from '../src/core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../src/core/pki/demo.ts';
import { crlPem, generateEncryptionKeys } from '../src/core/pki/issue.ts';
import { issueTicket, type Ticket } from '../src/core/ticket/ticket.ts';
import { DecodeJob } from '../src/viewer/pipeline/job.ts';
import type { WorkerLike } from '../src/viewer/pipeline/pool.ts';
import type { TrustBundle, WorkerRequest } from '../src/viewer/pipeline/protocol.ts';
import { sha256Of } from '../src/viewer/pipeline/trust.ts';

export interface TestTrust {
  readonly pki: DemoPki;
  readonly bundle: TrustBundle;
  readonly producer: SigningKey;
  readonly cloud: SigningKey;
}

export async function testTrust(): Promise<TestTrust> {
  const pki = await createDemoPki();
  const signer = (o: { keys: CryptoKeyPair }) =>
    signingKeyFromCryptoKeys('ECDSA-P256', o.keys.privateKey, o.keys.publicKey);
  return {
    pki,
    producer: await signer(pki.organisations.producer),
    cloud: await signer(pki.organisations.cloud),
    bundle: {
      root: pki.root.cert.toString('pem'),
      intermediates: Object.values(pki.hospitalCas).map((c) => c.cert.toString('pem')),
      organisations: Object.values(pki.organisations).map((o) => o.cert.toString('pem')),
      crls: pki.crls.map(crlPem),
      trustGroup: pki.trustGroupJws,
      rootSha256: await sha256Of(pki.root.cert),
    },
  };
}

export interface TestTicketOptions {
  readonly deviceId: string;
  /** The device's ECDH public key, the key part's recipient. */
  readonly deviceKey: CryptoKey;
  readonly images: readonly {
    readonly id: string;
    readonly key: Uint8Array;
    readonly trace?: Uint8Array;
  }[];
  readonly ttlMs?: number;
  readonly now?: number;
  /** The signer (by default the federation's producer). */
  readonly signer?: SigningKey;
}

/** A ticket of the test federation's producer, for treatment, to the test cloud and this device. */
export const testTicket = (trust: TestTrust, o: TestTicketOptions): Promise<Ticket> =>
  issueTicket({
    producer: o.signer ?? trust.producer,
    producerId: 'producer',
    cloudId: 'cloud',
    cloudEncryptionKey: trust.pki.organisations.cloud.encryption.publicKey,
    deviceId: o.deviceId,
    deviceEncryptionKey: o.deviceKey,
    images: o.images.map((i) => ({ id: i.id, key: i.key, trace: i.trace ?? new Uint8Array(32) })),
    ttlMs: o.ttlMs ?? 3_600_000,
    purpose: 'TREAT',
    ...(o.now !== undefined ? { now: o.now } : {}),
  });

export type TicketRequest = Omit<Extract<WorkerRequest, { kind: 'ticket' }>, 'id'>;

/**
 * The request that gives decode workers these image keys as the viewer does: a ticket's key part,
 * issued by the test federation's producer to a device key (by default a fresh non-extractable one),
 * with that key.
 */
export async function keysTicket(
  trust: TestTrust,
  images: readonly { readonly ref: string; readonly key: Uint8Array }[],
  device?: CryptoKeyPair,
): Promise<TicketRequest> {
  device ??= await generateEncryptionKeys(false);
  const deviceId = toHex(randomBytes(32));
  const ticket = await testTicket(trust, {
    deviceId,
    deviceKey: device.publicKey,
    images: images.map((i) => ({ id: i.ref, key: i.key })),
  });
  return { kind: 'ticket', keys: ticket.keys, decryptionKey: device.privateKey, deviceId };
}

/**
 * The real job code behind a worker-shaped object, for tests: messages are structured-cloned both
 * ways as a worker's would be (CryptoKeys included), and each one is logged by kind.
 */
export function inProcessWorker(log: string[] = [], name = 'w'): WorkerLike {
  const job = new DecodeJob((notice) => w.onmessage?.({ data: structuredClone(notice) }));
  const w: WorkerLike = {
    onmessage: null,
    postMessage(req: WorkerRequest) {
      log.push(`${name}:${req.kind}${req.kind === 'open' ? `:${req.ref}` : ''}`);
      const copy = structuredClone(req);
      setTimeout(
        () =>
          void job.handle(copy).then((r) => w.onmessage?.({ data: structuredClone(r.message) })),
        1,
      );
    },
    terminate() {},
  };
  return w;
}
