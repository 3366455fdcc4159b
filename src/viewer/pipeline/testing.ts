/**
 * A throw-away federation PKI for tests of the decode pipeline (unit and browser): root, producer and
 * cloud certificates, CRLs and the signed trust group as a worker TrustBundle, with the producer's and
 * the cloud's signing keys to protect and trace images that then verify through the real chain.
 */
import { signingKeyFromCryptoKeys, type SigningKey } from '../../core/crypto/keys.ts';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import { crlPem } from '../../core/pki/issue.ts';
import { DecodeJob } from './job.ts';
import type { WorkerLike } from './pool.ts';
import type { TrustBundle, WorkerRequest } from './protocol.ts';
import { sha256Of } from './trust.ts';

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
