/** Test page: exposes a function that decodes a DICOM file's pixel data with src/core in a Web Worker. */
import type { DecodeJob, Decoded } from './decode.worker.ts';

declare global {
  interface Window {
    decodeInWorker(job: DecodeJob): Promise<Decoded>;
  }
}

window.decodeInWorker = (job) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./decode.worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (e: MessageEvent<Decoded>) => {
      resolve(e.data);
      worker.terminate();
    };
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage(job);
  });
