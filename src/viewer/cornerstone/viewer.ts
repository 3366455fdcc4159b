/**
 * One stack viewport over an element: Cornerstone3D core and tools initialised once, a rendering
 * engine, a StackViewport showing `zt:` images, its tool group (window/level, pan, zoom and stack
 * scroll from @cornerstonejs/tools: the left button drags the chosen tool, the middle pans, the right
 * zooms, the wheel scrolls), and the operations a clinician uses (slice, window/level, zoom, pan,
 * rotate, flip, invert, reset), plus the mappings overlays need: image pixels to canvas pixels
 * (tampered tiles), the patient directions at the viewport's edges and millimetres per canvas pixel.
 * Keyboard bindings are attached by the UI layer.
 */
import {
  Enums,
  RenderingEngine,
  eventTarget,
  getRenderingEngine,
  init as initCore,
  isCornerstoneInitialized,
  utilities,
  type StackViewport,
  type Types,
} from '@cornerstonejs/core';
import {
  Enums as ToolEnums,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  init as initTools,
  utilities as toolUtilities,
} from '@cornerstonejs/tools';

import { MEASURE_CLASSES, MEASURE_TOOLS, type MeasureKind } from './measurements.ts';

let engineCount = 0;
let toolsReady = false;

/** The tool the left button drags: window/level, pan, zoom or a measurement. */
export type PrimaryTool = 'wl' | 'pan' | 'zoom' | MeasureKind;

const TOOL_NAMES: Record<PrimaryTool, string> = {
  wl: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  ...MEASURE_TOOLS,
};

/** Core and tools, once per page: tools must be initialised before an element is enabled. */
export function initCornerstone(): void {
  if (!isCornerstoneInitialized()) initCore();
  if (toolsReady) return;
  toolsReady = true;
  initTools();
  for (const T of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, ...MEASURE_CLASSES])
    addTool(T);
}

/** The patient directions (LPS letters: R/L, A/P, H/F) at the four edges of the viewport. */
export interface EdgeLabels {
  readonly top: string;
  readonly bottom: string;
  readonly left: string;
  readonly right: string;
}

const cross = (a: Types.Point3, b: Types.Point3): Types.Point3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
const neg = (a: Types.Point3): Types.Point3 => [-a[0], -a[1], -a[2]];

/** Edge labels of a camera (what OHIF's orientation markers compute). */
export function edgeLabels(viewUp: Types.Point3, viewPlaneNormal: Types.Point3): EdgeLabels {
  const lps = toolUtilities.orientation.getOrientationStringLPS;
  const row = cross(viewUp, viewPlaneNormal); // towards the right edge
  const column = neg(viewUp); // towards the bottom edge
  return {
    top: lps(viewUp),
    bottom: lps(column),
    left: lps(neg(row)),
    right: lps(row),
  };
}

export interface ViewState {
  readonly index: number;
  readonly imageId?: string;
  /** The window (modality units) on screen, when an image is. */
  readonly center?: number;
  readonly width?: number;
  readonly zoom: number;
  readonly invert: boolean;
  /** Rotation in degrees, clockwise, and flips, as the clinician set them. */
  readonly rotation: number;
  readonly flipHorizontal: boolean;
  readonly flipVertical: boolean;
}

export interface StackViewer {
  readonly viewport: StackViewport;
  readonly element: HTMLDivElement;
  setImages(imageIds: string[], index?: number): Promise<void>;
  show(index: number): Promise<void>;
  setWindow(center: number, width: number): void;
  setInvert(invert: boolean): void;
  rotate(degrees: number): void;
  flip(direction: 'horizontal' | 'vertical'): void;
  /** Cine: plays the stack in a loop at `fps` frames per second (again: changes the rate). */
  play(fps: number): void;
  stop(): void;
  /** The tool the left button drags (the middle button pans, the right zooms, the wheel scrolls). */
  setPrimaryTool(tool: PrimaryTool): void;
  reset(): void;
  /** Fits the canvas to its element; `render: false` leaves drawing to the next render asked for. */
  resize(render?: boolean): void;
  state(): ViewState;
  /** Canvas CSS pixels of an image pixel (column x, row y) of the image on screen. */
  imageToCanvas(x: number, y: number): [number, number] | undefined;
  /** Called after every render (new slice, window, camera): overlays redraw from here. */
  onRender(fn: () => void): () => void;
  /** Called when the stack moves to another slice, by a tool (the wheel) or by `show`. */
  onSlice(fn: (index: number) => void): () => void;
  /** The patient directions at the viewport's edges, when the image on screen has a geometry. */
  edges(): EdgeLabels | undefined;
  /** World millimetres per canvas CSS pixel along the canvas' horizontal (the scale bar). */
  mmPerCanvasPixel(): number | undefined;
  readonly index: number;
  /** Where Cornerstone knows this viewport: its rendering engine, viewport and tool group ids. */
  readonly engineId: string;
  readonly viewportId: string;
  readonly toolGroupId: string;
  /** Removes the viewport (and, for the first of an engine, the engine and its tool group). */
  destroy(): void;
}

/** A tool group with the viewer's tools: the left button drags window/level, wheel scrolls. */
function createToolGroup(id: string) {
  const group = ToolGroupManager.createToolGroup(id)!;
  for (const name of Object.values(TOOL_NAMES)) group.addTool(name);
  group.addTool(StackScrollTool.toolName);
  // Measurements already drawn stay editable (their handles move) whichever tool is chosen.
  for (const name of Object.values(MEASURE_TOOLS)) group.setToolPassive(name);
  const { MouseBindings } = ToolEnums;
  group.setToolActive(WindowLevelTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Primary }],
  });
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  // Wheel down: the next slice in display order (towards the feet for an axial series).
  group.setToolActive(StackScrollTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Wheel }],
  });
  return group;
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

/** The tool each tool group's left button drags (viewports of a layout share their group). */
const primaryOf = new Map<string, PrimaryTool>();
let siblingCount = 0;

/**
 * A stack viewport over `element`: in a rendering engine and tool group of its own, or, given
 * `sibling`, in the sibling's (the other viewports of a layout: Cornerstone's synchronizers look both
 * viewports up in one rendering engine, and one tool group gives every viewport the same mouse tools).
 */
export function createStackViewer(element: HTMLDivElement, sibling?: StackViewer): StackViewer {
  initCornerstone();
  const engineId = sibling ? sibling.engineId : `ztv-engine-${++engineCount}`;
  const viewportId = sibling ? `${engineId}-stack-${++siblingCount}` : `${engineId}-stack`;
  const engine = sibling ? getRenderingEngine(engineId)! : new RenderingEngine(engineId);
  engine.enableElement({ viewportId, type: Enums.ViewportType.STACK, element });
  // Cornerstone makes the element focusable by script only; a keyboard user reaches it with Tab.
  element.tabIndex = 0;
  const viewport = engine.getViewport(viewportId) as StackViewport;
  const group = sibling
    ? ToolGroupManager.getToolGroup(sibling.toolGroupId)!
    : createToolGroup(`${engineId}-tools`);
  group.addViewport(viewportId, engineId);
  const { MouseBindings } = ToolEnums;
  const presentation = () => viewport.getViewPresentation();
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
      // PS3.3 C.11.2.1.2's linear window, as Cornerstone's own presets set it (so that reading the
      // range back gives the same width and center: the overlay shows the real values).
      viewport.setProperties({
        voiRange: utilities.windowLevel.toLowHighRange(width, center),
      } as Types.ViewportProperties);
      viewport.render();
    },
    setInvert(invert) {
      viewport.setProperties({ invert } as Types.ViewportProperties);
      viewport.render();
    },
    rotate(degrees) {
      const r = presentation().rotation ?? 0;
      viewport.setViewPresentation({ rotation: (((r + degrees) % 360) + 360) % 360 });
      viewport.render();
    },
    flip(direction) {
      const p = presentation();
      viewport.setViewPresentation(
        direction === 'horizontal'
          ? { flipHorizontal: !p.flipHorizontal }
          : { flipVertical: !p.flipVertical },
      );
      viewport.render();
    },
    play(fps) {
      toolUtilities.cine.stopClip(element);
      toolUtilities.cine.playClip(element, {
        framesPerSecond: Math.max(1, Math.min(60, fps)),
        loop: true,
      });
    },
    stop() {
      toolUtilities.cine.stopClip(element);
    },
    setPrimaryTool(tool) {
      const primary = primaryOf.get(group.id) ?? 'wl';
      if (tool === primary) return;
      group.setToolPassive(TOOL_NAMES[primary]);
      group.setToolActive(TOOL_NAMES[tool], {
        bindings: [{ mouseButton: MouseBindings.Primary }],
      });
      primaryOf.set(group.id, tool);
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
      const wl = voi ? utilities.windowLevel.toWindowLevel(voi.lower, voi.upper) : undefined;
      const vp = presentation();
      return {
        index: viewport.getCurrentImageIdIndex(),
        ...(viewport.getCurrentImageId() ? { imageId: viewport.getCurrentImageId() } : {}),
        ...(wl ? { center: wl.windowCenter, width: Math.max(1e-6, wl.windowWidth) } : {}),
        zoom: viewport.getZoom(),
        invert: !!p.invert,
        rotation: vp.rotation ?? 0,
        flipHorizontal: !!vp.flipHorizontal,
        flipVertical: !!vp.flipVertical,
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
    onSlice(fn) {
      const h = (e: Event) => fn((e as CustomEvent<{ imageIdIndex: number }>).detail.imageIdIndex);
      element.addEventListener(Enums.Events.STACK_NEW_IMAGE, h);
      return () => element.removeEventListener(Enums.Events.STACK_NEW_IMAGE, h);
    },
    edges() {
      const cam = viewport.getCamera();
      if (!cam.viewUp || !cam.viewPlaneNormal) return undefined;
      return edgeLabels(cam.viewUp, cam.viewPlaneNormal);
    },
    mmPerCanvasPixel() {
      if (!viewport.getCurrentImageId()) return undefined;
      const a = viewport.canvasToWorld([0, 0]);
      const b = viewport.canvasToWorld([100, 0]);
      const d = Math.hypot(b[0] - a[0], b[1] - a[1], b[2] - a[2]) / 100;
      return Number.isFinite(d) && d > 0 ? d : undefined;
    },
    get index() {
      return viewport.getCurrentImageIdIndex();
    },
    engineId,
    viewportId,
    toolGroupId: group.id,
    destroy() {
      if (sibling) {
        group.removeViewports(engineId, viewportId);
        engine.disableElement(viewportId);
        return;
      }
      primaryOf.delete(group.id);
      ToolGroupManager.destroyToolGroup(group.id);
      engine.destroy();
    },
  };
}
