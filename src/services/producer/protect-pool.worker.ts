/**
 * One thread of the producer's protect pool (protect-pool.ts): protects the instances it is handed
 * with the very code the producer runs in process (`protect`), so the bytes are the same; only the
 * seal's signature is asked of the parent thread, which alone holds the hospital's signing key.
 */
import { parentPort } from 'node:worker_threads';
import { verifyKeyFromSpki, type SigAlg } from '../../core/crypto/keys.ts';
import { isZtvError } from '../../core/errors.ts';
import { protect, type ProtectOptions } from '../../core/protect/index.ts';
import type { FromPool, ToPool } from './protect-pool.ts';

const port = parentPort!;
const waiting = new Map<number, { resolve: (s: Uint8Array) => void; reject: (e: Error) => void }>();
let nextSign = 0;
let sealer: ProtectOptions['signer'] | undefined;
let pseudonymKey: Uint8Array | undefined;

const send = (m: FromPool, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

async function setUp(alg: SigAlg, spki: Uint8Array, key: Uint8Array): Promise<void> {
  const publicKey = await verifyKeyFromSpki(spki);
  if (publicKey.alg !== alg) throw new Error('the signing key and its public key disagree');
  pseudonymKey = key;
  sealer = {
    alg,
    publicKey,
    sign: (message) =>
      new Promise((resolve, reject) => {
        const id = nextSign++;
        waiting.set(id, { resolve, reject });
        send({ type: 'sign', id, message });
      }),
  };
}

port.on('message', (m: ToPool) => {
  if (m.type === 'init') {
    setUp(m.alg, m.spki, m.pseudonymKey).then(
      () => send({ type: 'ready' }),
      (e: Error) => send({ type: 'failed', job: -1, error: { message: e.message } }),
    );
    return;
  }
  if (m.type === 'signed' || m.type === 'sign-failed') {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.type === 'signed') w?.resolve(m.signature);
    else w?.reject(new Error(m.message));
    return;
  }
  const { job, input, options } = m;
  protect(input, { ...options, signer: sealer!, pseudonymKey: pseudonymKey! }).then(
    (p) => send({ type: 'done', job, result: p }, [p.bytes.buffer as ArrayBuffer]),
    (e: unknown) =>
      send({
        type: 'failed',
        job,
        error: isZtvError(e)
          ? { message: e.message, code: e.code, details: e.details }
          : { message: e instanceof Error ? e.message : String(e) },
      }),
  );
});
