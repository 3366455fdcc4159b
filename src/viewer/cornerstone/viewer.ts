/**
 * One stack viewport over an element: Cornerstone3D core initialised once, a rendering engine, a
 * StackViewport showing `zt:` images, and the operations a clinician uses (slice, window/level, zoom,
 * pan, invert, reset), plus the mapping from image pixels to canvas pixels that overlays (tampered
 * tiles) need. Mouse and keyboard bindings are attached by the UI layer.
 */
import {
  Enums,
  RenderingEngine,
  eventTarget,
  init as initCore,
  isCornerstoneInitialized,
  utilities,
  type StackViewport,
  type Types,
} from '@cornerstonejs/core';

let engineCount = 0;

export interface ViewState {
  readonly index: number;
  readonly imageId?: string;
  /** The window (modality units) on screen, when an image is. */
  readonly center?: number;
  readonly width?: number;
  readonly zoom: number;
  readonly invert: boolean;
}

export interface StackViewer {
  readonly viewport: StackViewport;
  readonly element: HTMLDivElement;
  setImages(imageIds: string[], index?: number): Promise<void>;
  show(index: number): Promise<void>;
  setWindow(center: number, width: number): void;
  setInvert(invert: boolean): void;
  /** Moves the image by a canvas-pixel offset. */
  pan(dx: number, dy: number): void;
  /** Multiplies the zoom by `factor` (>1 magnifies). */
  zoom(factor: number): void;
  reset(): void;
  /** Fits the canvas to its element; `render: false` leaves drawing to the next render asked for. */
  resize(render?: boolean): void;
  state(): ViewState;
  /** Canvas CSS pixels of an image pixel (column x, row y) of the image on screen. */
  imageToCanvas(x: number, y: number): [number, number] | undefined;
  /** Called after every render (new slice, window, camera): overlays redraw from here. */
  onRender(fn: () => void): () => void;
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
  const props = () => viewport.getProperties() as Types.StackViewportProperties;
  return {
    viewport,
    element,
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
    pan(dx, dy) {
      const cam = viewport.getCamera();
      if (!cam.focalPoint || !cam.position) return;
      const a = viewport.canvasToWorld([0, 0]);
      const b = viewport.canvasToWorld([dx, dy]);
      const d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
      const f = cam.focalPoint;
      const p = cam.position;
      viewport.setCamera({
        focalPoint: [f[0] - d[0]!, f[1] - d[1]!, f[2] - d[2]!],
        position: [p[0] - d[0]!, p[1] - d[1]!, p[2] - d[2]!],
      });
      viewport.render();
    },
    zoom(factor) {
      const z = viewport.getZoom();
      viewport.setZoom(Math.min(40, Math.max(0.05, z * factor)));
      viewport.render();
    },
    reset() {
      viewport.resetCamera();
      viewport.resetProperties();
      viewport.render();
    },
    resize(render = true) {
      engine.resize(render, true);
    },
    state() {
      const p = props();
      const voi = p.voiRange;
      return {
        index: viewport.getCurrentImageIdIndex(),
        ...(viewport.getCurrentImageId() ? { imageId: viewport.getCurrentImageId() } : {}),
        ...(voi
          ? { center: (voi.lower + voi.upper) / 2, width: Math.max(1e-6, voi.upper - voi.lower) }
          : {}),
        zoom: viewport.getZoom(),
        invert: !!p.invert,
      };
    },
    imageToCanvas(x, y) {
      const id = viewport.getCurrentImageId();
      if (!id) return undefined;
      const world = utilities.imageToWorldCoords(id, [x, y]);
      if (!world) return undefined;
      const c = viewport.worldToCanvas(world);
      return [c[0], c[1]];
    },
    onRender(fn) {
      const h = () => fn();
      element.addEventListener(Enums.Events.IMAGE_RENDERED, h);
      return () => element.removeEventListener(Enums.Events.IMAGE_RENDERED, h);
    },
    get index() {
      return viewport.getCurrentImageIdIndex();
    },
    destroy() {
      engine.destroy();
    },
  };
}
