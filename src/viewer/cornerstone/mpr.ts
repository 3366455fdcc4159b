/**
 * Multiplanar reformatting in the browser: a Cornerstone volume made from a series' `zt:` image ids
 * — the restored, verified pixels already in memory (the loader answers from the study; nothing is
 * downloaded or decrypted again) — shown in axial, sagittal and coronal orthographic viewports with
 * @cornerstonejs/tools' crosshairs (left button), window/level (right button), pan (middle button)
 * and slice scrolling (the wheel). A probe reads the voxel under a canvas point: its value in
 * modality units, its index and the world position of its centre.
 */
import {
  Enums,
  RenderingEngine,
  cache,
  imageLoader,
  setVolumesForViewports,
  utilities,
  volumeLoader,
  type Types,
  type VolumeViewport,
} from '@cornerstonejs/core';
import {
  CrosshairsTool,
  Enums as ToolEnums,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
} from '@cornerstonejs/tools';
import { initCornerstone } from './viewer.ts';

export const MPR_VIEWS = ['axial', 'sagittal', 'coronal'] as const;
export type MprView = (typeof MPR_VIEWS)[number];

export interface VoxelProbe {
  /** Voxel index (column, row, slice of the volume). */
  readonly index: readonly [number, number, number];
  /** World (patient, LPS mm) position of the voxel's centre. */
  readonly world: readonly [number, number, number];
  /** The voxel's value, in modality units (HU for CT). */
  readonly value: number;
}

export interface MprViewer {
  readonly viewports: Readonly<Record<MprView, VolumeViewport>>;
  /** The voxel under a canvas point (CSS pixels) of a view, if the point lies in the volume. */
  probe(view: MprView, x: number, y: number): VoxelProbe | undefined;
  setWindow(center: number, width: number): void;
  /** The crosshairs' centre (world), where the three planes meet. */
  center(): Types.Point3 | undefined;
  resize(): void;
  destroy(): void;
}

let mprCount = 0;
let crosshairsAdded = false;

/** Builds the volume from `imageIds` (every one already open) and shows it in three viewports. */
export async function createMprViewer(
  elements: Readonly<Record<MprView, HTMLDivElement>>,
  imageIds: readonly string[],
  window?: { center: number; width: number },
): Promise<MprViewer> {
  initCornerstone();
  if (!crosshairsAdded) {
    crosshairsAdded = true;
    addTool(CrosshairsTool);
  }
  const id = `ztv-mpr-${++mprCount}`;
  const volumeId = `${id}-volume`;
  const engine = new RenderingEngine(id);
  const orientation = {
    axial: Enums.OrientationAxis.AXIAL,
    sagittal: Enums.OrientationAxis.SAGITTAL,
    coronal: Enums.OrientationAxis.CORONAL,
  } as const;
  engine.setViewports(
    MPR_VIEWS.map((v) => ({
      viewportId: `${id}-${v}`,
      type: Enums.ViewportType.ORTHOGRAPHIC,
      element: elements[v],
      defaultOptions: { orientation: orientation[v], background: [0, 0, 0] as Types.Point3 },
    })),
  );
  for (const v of MPR_VIEWS) elements[v].tabIndex = 0;
  const viewports = Object.fromEntries(
    MPR_VIEWS.map((v) => [v, engine.getViewport(`${id}-${v}`) as VolumeViewport]),
  ) as Record<MprView, VolumeViewport>;
  let group: ReturnType<typeof ToolGroupManager.createToolGroup>;
  try {
    // Every image is in the study's memory: the loader hands each over without a network request or
    // a decryption, and the volume is made from the cached images.
    await Promise.all(imageIds.map((i) => imageLoader.loadAndCacheImage(i)));
    const volume = await volumeLoader.createAndCacheVolumeFromImages(volumeId, [...imageIds]);
    volume.load?.(() => undefined);
    await setVolumesForViewports(
      engine,
      [{ volumeId }],
      MPR_VIEWS.map((v) => `${id}-${v}`),
    );
    group = ToolGroupManager.createToolGroup(`${id}-tools`)!;
    for (const name of [
      CrosshairsTool.toolName,
      WindowLevelTool.toolName,
      PanTool.toolName,
      ZoomTool.toolName,
      StackScrollTool.toolName,
    ])
      group.addTool(name);
    for (const v of MPR_VIEWS) group.addViewport(`${id}-${v}`, id);
    const { MouseBindings } = ToolEnums;
    group.setToolActive(CrosshairsTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Primary }],
    });
    group.setToolActive(WindowLevelTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Secondary }],
    });
    group.setToolActive(PanTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Auxiliary }],
    });
    group.setToolActive(StackScrollTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Wheel }],
    });
    group.setToolPassive(ZoomTool.toolName);
  } catch (e) {
    engine.destroy();
    cache.removeVolumeLoadObject(volumeId);
    throw e;
  }
  const setWindow = (center: number, width: number) => {
    for (const v of MPR_VIEWS)
      viewports[v].setProperties({
        voiRange: utilities.windowLevel.toLowHighRange(width, center),
      });
    engine.render();
  };
  if (window) setWindow(window.center, window.width);
  else engine.render();
  return {
    viewports,
    probe(view, x, y) {
      const vp = viewports[view];
      const volume = cache.getVolume(volumeId);
      if (!volume?.imageData || !volume.voxelManager) return undefined;
      const world = vp.canvasToWorld([x, y]);
      const ijk = utilities.transformWorldToIndex(volume.imageData, world);
      const [w, h, d] = volume.dimensions;
      const [i, j, k] = ijk;
      if (i < 0 || j < 0 || k < 0 || i >= w || j >= h || k >= d) return undefined;
      const value = volume.voxelManager.getAtIJK(i, j, k) as number;
      const c = volume.imageData.indexToWorld([i, j, k]) as number[];
      return { index: [i, j, k], world: [c[0]!, c[1]!, c[2]!], value };
    },
    setWindow,
    center() {
      const tool = group?.getToolInstance(CrosshairsTool.toolName) as CrosshairsTool | undefined;
      return tool?.toolCenter;
    },
    resize() {
      engine.resize(true, true);
    },
    destroy() {
      ToolGroupManager.destroyToolGroup(group.id);
      engine.destroy();
      cache.removeVolumeLoadObject(volumeId);
    },
  };
}
