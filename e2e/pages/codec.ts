/** Test page: exposes a function that opens a protected image with src/core inside a Web Worker. */
import type { Job, Outcome } from './codec.worker.ts';

declare global {
  interface Window {
    openInWorker(job: Job): Promise<Outcome>;
  }
}

window.openInWorker = (job) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./codec.worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (e: MessageEvent<Outcome>) => {
      resolve(e.data);
      worker.terminate();
    };
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage(job);
  });
