/**
 * Test page: the viewer's decode pipeline (real Web Workers) and Cornerstone integration render a
 * protected series into a stack viewport; the test reads the canvas back.
 */
import { fromBase64 } from '../../src/core/bytes.ts';
import { ECDH_KEY } from '../../src/core/pki/issue.ts';
import {
  imageIdOf,
  registerZtImages,
  type OpenedInstance,
} from '../../src/viewer/cornerstone/images.ts';
import {
  createStackViewer,
  onImageLoadError,
  type StackViewer,
} from '../../src/viewer/cornerstone/viewer.ts';
import { WorkerPool, type WorkerLike } from '../../src/viewer/pipeline/pool.ts';
import type { TrustBundle } from '../../src/viewer/pipeline/protocol.ts';

interface Input {
  trust: TrustBundle;
  images: { ref: string; bytes: string }[];
  /** The images' keys: a ticket's key part for a device whose private key is given as a JWK. */
  ticket: { keys: string; deviceId: string; deviceKey: JsonWebKey };
}

declare global {
  interface Window {
    renderSeries(input: Input): Promise<{ order: string[]; statuses: string[]; ms: number }>;
    showSlice(index: number, center: number, width: number): Promise<void>;
    canvasPixels(): number[];
    /** The decode workers' warm-up verdicts so far, and how many workers there are. */
    warmUps(): { statuses: string[]; workers: number };
    loadErrors: string[];
  }
}

let viewer: StackViewer | undefined;
window.loadErrors = [];
onImageLoadError((id, err) => window.loadErrors.push(`${id}: ${err}`));

window.renderSeries = async ({ trust, images, ticket }) => {
  const t0 = performance.now();
  const pool = new WorkerPool(
    () =>
      new Worker(new URL('../../src/viewer/pipeline/decode.worker.ts', import.meta.url), {
        type: 'module',
      }) as unknown as WorkerLike,
    Math.max(1, (navigator.hardwareConcurrency || 2) - 1),
  );
  window.warmUps = () => ({ statuses: [...pool.warmUps], workers: pool.size });
  await pool.broadcast({ kind: 'trust', trust });
  const decryptionKey = await crypto.subtle.importKey('jwk', ticket.deviceKey, ECDH_KEY, false, [
    'deriveBits',
  ]);
  for (const r of await pool.broadcast({
    kind: 'ticket',
    keys: ticket.keys,
    decryptionKey,
    deviceId: ticket.deviceId,
  }))
    if (r.kind !== 'ticket-opened')
      throw new Error(`the ticket did not open: ${JSON.stringify(r)}`);
  const opened = new Map<string, OpenedInstance>();
  const results = await Promise.all(
    images.map(async (i) => {
      const res = await pool.run({
        kind: 'open',
        ref: i.ref,
        bytes: fromBase64(i.bytes).buffer as ArrayBuffer,
      });
      if (res.kind !== 'opened' || !res.meta)
        throw new Error(`could not open ${i.ref}: ${JSON.stringify(res)}`);
      const inst: OpenedInstance = {
        ref: i.ref,
        verdict: res.verdict,
        meta: res.meta,
        frames: res.frames,
        header: res.header,
      };
      opened.set(i.ref, inst);
      return inst;
    }),
  );
  registerZtImages(async (ref) => opened.get(ref)!, opened);
  // Slices in patient order, by position along the normal (here z), as a clinician expects.
  const sorted = [...results].sort(
    (a, b) => (a.meta.imagePosition?.[2] ?? 0) - (b.meta.imagePosition?.[2] ?? 0),
  );
  viewer = createStackViewer(document.getElementById('vp') as HTMLDivElement);
  await viewer.setImages(sorted.map((r) => imageIdOf(r.ref)));
  return {
    order: sorted.map((r) => r.ref),
    statuses: sorted.map((r) => r.verdict.status),
    ms: performance.now() - t0,
  };
};

window.showSlice = async (index, center, width) => {
  await viewer!.show(index);
  viewer!.setWindow(center, width);
  await new Promise((r) => requestAnimationFrame(() => r(null)));
};

window.canvasPixels = () => {
  const canvas = document.querySelector('#vp canvas') as HTMLCanvasElement;
  const ctx = canvas.getContext('2d')!;
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const grey: number[] = [];
  for (let i = 0; i < data.length; i += 4) grey.push(data[i]!);
  return [canvas.width, canvas.height, ...grey];
};
