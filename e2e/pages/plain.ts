/**
 * Benchmark baseline page: plain Cornerstone3D with its standard dicom-image-loader (wadouri, its
 * default worker pool), loading unprotected DICOM files over HTTP into one stack viewport — first
 * render, then every slice loaded and cached — exactly as a viewer without any protection would.
 */
import {
  Enums,
  RenderingEngine,
  imageLoader,
  init as initCore,
  type StackViewport,
} from '@cornerstonejs/core';
import { init as initLoader } from '@cornerstonejs/dicom-image-loader';

declare global {
  interface Window {
    plainLoad(urls: string[]): Promise<{ firstRender: number; all: number; workers: number }>;
  }
}

// The loader's own init first: it purges the image cache (notes/cornerstone3d.md).
initLoader();
initCore();

window.plainLoad = async (urls) => {
  const element = document.getElementById('vp') as HTMLDivElement;
  const engine = new RenderingEngine('plain');
  engine.enableElement({ viewportId: 'stack', type: Enums.ViewportType.STACK, element });
  const viewport = engine.getViewport('stack') as StackViewport;
  const ids = urls.map((u) => `wadouri:${u}`);
  const t0 = performance.now();
  const rendered = new Promise<number>((resolve) =>
    element.addEventListener(Enums.Events.IMAGE_RENDERED, () => resolve(performance.now() - t0), {
      once: true,
    }),
  );
  await viewport.setStack(ids, 0);
  viewport.render();
  const firstRender = await rendered;
  // Then every slice, as a viewer preloading the stack does.
  await Promise.all(ids.map((id) => imageLoader.loadAndCacheImage(id)));
  const all = performance.now() - t0;
  const workers = navigator.hardwareConcurrency
    ? Math.max(1, Math.floor(navigator.hardwareConcurrency / 2))
    : 1;
  engine.destroy();
  return { firstRender, all, workers };
};
