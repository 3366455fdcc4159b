/** Web Worker of the codec test page: verifies and opens a protected image with src/core as is. */
import { fromBase64, toHex } from '../../src/core/bytes.ts';
import { verifyKeyFromPem } from '../../src/core/crypto/keys.ts';
import { openProtected, staticResolver } from '../../src/core/protect/index.ts';

export interface Job {
  image: string;
  imageKey: string;
  producerPem: string;
  cloudPem: string;
}

export interface Outcome {
  status: string;
  summary: string;
  pixelsSha256?: string;
  traceText?: string;
  patientId?: string;
  error?: string;
}

self.onmessage = async (e: MessageEvent<Job>) => {
  try {
    const job = e.data;
    const resolver = staticResolver({
      producer: [{ key: await verifyKeyFromPem(job.producerPem), subject: 'producer' }],
      cloud: [{ key: await verifyKeyFromPem(job.cloudPem), subject: 'cloud' }],
    });
    const opened = await openProtected(fromBase64(job.image), {
      resolver,
      imageKey: fromBase64(job.imageKey),
    });
    const pixels = opened.restored?.pixels;
    const digest = pixels
      ? toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', pixels.slice())))
      : undefined;
    const out: Outcome = {
      status: opened.verdict.status,
      summary: opened.verdict.summary,
      ...(digest ? { pixelsSha256: digest } : {}),
      ...(opened.verdict.trace?.text ? { traceText: opened.verdict.trace.text } : {}),
      patientId: opened.restored?.dataset.text(0x00100020) ?? '',
    };
    self.postMessage(out);
  } catch (err) {
    self.postMessage({
      status: 'error',
      summary: '',
      error: (err as Error).message,
    } satisfies Outcome);
  }
};
