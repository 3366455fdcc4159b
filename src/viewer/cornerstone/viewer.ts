/**
 * One stack viewport over an element: Cornerstone3D core initialised once, a rendering engine, a
 * StackViewport showing `zt:` images, and the operations a clinician uses (slice, window/level,
 * zoom, pan, invert, reset). Tools (mouse bindings) are attached by the UI layer.
 */
import {
  Enums,
  RenderingEngine,
  eventTarget,
  init as initCore,
  isCornerstoneInitialized,
  type StackViewport,
  type Types,
} from '@cornerstonejs/core';

let engineCount = 0;

export interface StackViewer {
  readonly viewport: StackViewport;
  setImages(imageIds: string[], index?: number): Promise<void>;
  show(index: number): Promise<void>;
  setWindow(center: number, width: number): void;
  setInvert(invert: boolean): void;
  reset(): void;
  readonly index: number;
  destroy(): void;
}

/** Load failures of `zt:` images, reported once each (Cornerstone otherwise stays silently blank). */
export function onImageLoadError(fn: (imageId: string, error: string) => void): () => void {
  const handler = (e: Event) => {
    const d = (e as CustomEvent<{ imageId?: string; error?: unknown }>).detail;
    fn(
      d.imageId ?? '',
      d.error instanceof Error ? d.error.message : String(d.error ?? 'unknown error'),
    );
  };
  eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, handler);
  return () => eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_ERROR, handler);
}

export function createStackViewer(element: HTMLDivElement): StackViewer {
  if (!isCornerstoneInitialized()) initCore();
  const engineId = `ztv-engine-${++engineCount}`;
  const viewportId = `${engineId}-stack`;
  const engine = new RenderingEngine(engineId);
  engine.enableElement({ viewportId, type: Enums.ViewportType.STACK, element });
  const viewport = engine.getViewport(viewportId) as StackViewport;
  return {
    viewport,
    async setImages(imageIds, index = 0) {
      await viewport.setStack(imageIds, index);
      viewport.render();
    },
    async show(index) {
      await viewport.setImageIdIndex(index);
      viewport.render();
    },
    setWindow(center, width) {
      viewport.setProperties({
        voiRange: { lower: center - width / 2, upper: center + width / 2 },
      } as Types.ViewportProperties);
      viewport.render();
    },
    setInvert(invert) {
      viewport.setProperties({ invert } as Types.ViewportProperties);
      viewport.render();
    },
    reset() {
      viewport.resetCamera();
      viewport.resetProperties();
      viewport.render();
    },
    get index() {
      return viewport.getCurrentImageIdIndex();
    },
    destroy() {
      engine.destroy();
    },
  };
}
