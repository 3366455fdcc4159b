/**
 * Cornerstone3D integration: a custom image loader for `zt:` image ids and a metadata provider, both
 * fed by the decode pipeline's results. Pixels reach Cornerstone already in modality units and marked
 * pre-scaled (its GPU path ignores slope and intercept), with a voxel manager (without one, core fires
 * a spurious load failure).
 */
import { Enums, imageLoader, metaData, utilities, type Types } from '@cornerstonejs/core';
import type { Verdict } from '../../core/protect/verdict.ts';
import type { DisplayMeta } from '../pipeline/display.ts';
import type { FrameOut, TagRow } from '../pipeline/protocol.ts';

export const SCHEME = 'zt';

/** What the pipeline produced for one instance. */
export interface OpenedInstance {
  readonly ref: string;
  readonly verdict: Verdict;
  readonly meta: DisplayMeta;
  readonly frames: readonly FrameOut[];
  readonly header: readonly TagRow[];
}

/** Image ids: `zt:<instance ref>` for single-frame, `zt:<ref>?frame=<n>` (from 1) for multi-frame. */
export const imageIdOf = (ref: string, frame = 1, frames = 1): string =>
  frames > 1
    ? `${SCHEME}:${encodeURIComponent(ref)}?frame=${frame}`
    : `${SCHEME}:${encodeURIComponent(ref)}`;

export function parseImageId(imageId: string): { ref: string; frame: number } {
  const m = /^zt:([^?]+)(?:\?frame=(\d+))?$/.exec(imageId);
  if (!m) throw new Error(`not a zt image id: ${imageId}`);
  return { ref: decodeURIComponent(m[1]!), frame: m[2] ? Number(m[2]) : 1 };
}

/** Where the loader gets opened instances from (the viewer's study session). */
export type InstanceProvider = (ref: string) => Promise<OpenedInstance>;

const arrays = {
  int16: Int16Array,
  uint16: Uint16Array,
  float32: Float32Array,
  uint8: Uint8Array,
} as const;

const dataTypes = {
  int16: 'Int16Array',
  uint16: 'Uint16Array',
  float32: 'Float32Array',
  uint8: 'Uint8Array',
} as const;

/** The Cornerstone image of one frame. */
export function toCornerstoneImage(
  imageId: string,
  inst: OpenedInstance,
  frame: number,
): Types.IImage {
  const f = inst.frames[frame - 1];
  if (!f) throw new Error(`${inst.ref} has no frame ${frame}`);
  const m = inst.meta;
  const scalarData = new arrays[f.kind](f.pixels);
  const components = m.color ? 3 : 1;
  const voxelManager = utilities.VoxelManager.createImageVoxelManager({
    scalarData,
    width: m.columns,
    height: m.rows,
    numberOfComponents: components,
  });
  const wc = m.windowCenter ?? (f.min + f.max) / 2;
  const ww = m.windowWidth ?? Math.max(1, f.max - f.min);
  return {
    imageId,
    rows: m.rows,
    columns: m.columns,
    height: m.rows,
    width: m.columns,
    color: m.color,
    rgba: false,
    numberOfComponents: components,
    minPixelValue: f.min,
    maxPixelValue: f.max,
    slope: 1,
    intercept: 0,
    windowCenter: m.color ? 127.5 : wc,
    windowWidth: m.color ? 255 : ww,
    voiLUTFunction: 'LINEAR' as Types.IImage['voiLUTFunction'],
    invert: m.invert,
    photometricInterpretation: m.color ? 'RGB' : m.photometric,
    rowPixelSpacing: m.pixelSpacing?.[0] ?? 1,
    columnPixelSpacing: m.pixelSpacing?.[1] ?? 1,
    sizeInBytes: f.pixels.byteLength,
    dataType: dataTypes[f.kind],
    getPixelData: () => scalarData,
    getCanvas: () => {
      throw new Error('zt images are rendered by the viewport, not as canvases');
    },
    preScale: {
      enabled: true,
      scaled: true,
      scalingParameters: {
        rescaleSlope: m.rescaleSlope,
        rescaleIntercept: m.rescaleIntercept,
        ...(m.modality ? { modality: m.modality } : {}),
      },
    },
    voxelManager,
  } as unknown as Types.IImage;
}

/**
 * A black 512x512 16-bit image the viewer draws while it waits for the first verified one: the first
 * draw of a data type compiles its shaders (hundreds of milliseconds with software WebGL), and this
 * way that happens during the redemption instead of after the first image is verified.
 */
export const WARMUP_IMAGE_ID = `${SCHEME}:warm-up`;

function warmupInstance(): OpenedInstance {
  const side = 512;
  return {
    ref: 'warm-up',
    verdict: {
      status: 'unverifiable',
      summary: 'placeholder',
      checks: [],
      tampered: [],
      tiles: [],
      keyed: false,
    },
    meta: {
      rows: side,
      columns: side,
      frames: 1,
      color: false,
      photometric: 'MONOCHROME2',
      invert: false,
      rescaleSlope: 1,
      rescaleIntercept: 0,
      windowCenter: 40,
      windowWidth: 400,
    },
    frames: [
      {
        pixels: new Int16Array(side * side).fill(-2000).buffer,
        kind: 'int16',
        min: -2000,
        max: -2000,
      },
    ],
    header: [],
  };
}

/** Where `zt:` images come from: the study being viewed (swapped when another study opens). */
let source: { get: InstanceProvider; known: { get(ref: string): OpenedInstance | undefined } } = {
  get: (ref) => Promise.reject(new Error(`no study holds ${ref}`)),
  known: new Map(),
};
let registered = false;

/**
 * Registers the `zt:` loader and the metadata provider once, and points them at `get` (resolves an
 * instance when the pipeline has opened it) and `known` (the instances opened so far). Calling it
 * again only swaps the source, so that successive studies do not stack providers.
 */
export function registerZtImages(
  get: InstanceProvider,
  known: { get(ref: string): OpenedInstance | undefined },
): void {
  source = { get, known };
  ensureZtLoader();
}

/** Registers the loader and the provider once (no study yet: only the warm-up image loads). */
export function ensureZtLoader(): void {
  if (registered) return;
  registered = true;
  imageLoader.registerImageLoader(SCHEME, (imageId: string) => {
    if (imageId === WARMUP_IMAGE_ID)
      return { promise: Promise.resolve(toCornerstoneImage(imageId, warmupInstance(), 1)) };
    const { ref, frame } = parseImageId(imageId);
    return {
      promise: source.get(ref).then((inst) => toCornerstoneImage(imageId, inst, frame)),
    };
  });
  metaData.addProvider((type: string, imageId: string) => {
    if (typeof imageId !== 'string' || !imageId.startsWith(`${SCHEME}:`)) return undefined;
    if (imageId === WARMUP_IMAGE_ID) return metadataModule(type, warmupInstance(), 1);
    const { ref, frame } = parseImageId(imageId);
    const inst = source.known.get(ref);
    return inst ? metadataModule(type, inst, frame) : undefined;
  }, 10000);
}

/**
 * The metadata modules Cornerstone asks for (generalSeries, generalImage, imagePlane, imagePixel,
 * calibratedPixelSpacing, voiLut, modalityLut).
 */
export function metadataModule(type: string, inst: OpenedInstance, frame: number): unknown {
  const m = inst.meta;
  const f = inst.frames[frame - 1];
  switch (type) {
    case 'generalSeriesModule':
      return {
        modality: m.modality ?? 'OT',
        seriesInstanceUID: m.seriesInstanceUid,
        seriesNumber: m.seriesNumber,
      };
    case 'generalImageModule':
      return { instanceNumber: m.instanceNumber, sopInstanceUID: m.sopInstanceUid };
    case 'imagePlaneModule': {
      const [rs, cs] = m.pixelSpacing ?? [1, 1];
      const ori = m.imageOrientation ?? [1, 0, 0, 0, 1, 0];
      return {
        // Without one, a series is its own frame of reference: never synchronised with another.
        frameOfReferenceUID: m.frameOfReferenceUid ?? m.seriesInstanceUid,
        rows: m.rows,
        columns: m.columns,
        imageOrientationPatient: [...ori],
        rowCosines: ori.slice(0, 3),
        columnCosines: ori.slice(3, 6),
        imagePositionPatient: m.imagePosition ? [...m.imagePosition] : [0, 0, frame - 1],
        sliceThickness: m.sliceThickness,
        pixelSpacing: [rs, cs],
        rowPixelSpacing: rs,
        columnPixelSpacing: cs,
        // Without a spacing, 1 mm per pixel is only a placeholder: Cornerstone then measures in "px".
        usingDefaultValues: !m.pixelSpacing,
      };
    }
    case 'imagePixelModule':
      return {
        samplesPerPixel: m.color ? 3 : 1,
        photometricInterpretation: m.color ? 'RGB' : m.photometric,
        rows: m.rows,
        columns: m.columns,
        bitsAllocated: f?.kind === 'uint8' ? 8 : f?.kind === 'float32' ? 32 : 16,
        bitsStored: f?.kind === 'uint8' ? 8 : f?.kind === 'float32' ? 32 : 16,
        highBit: f?.kind === 'uint8' ? 7 : 15,
        pixelRepresentation: f?.kind === 'int16' ? 1 : 0,
      };
    case 'calibratedPixelSpacing':
      // Imager Pixel Spacing alone: Cornerstone's projection calibration, so that its tools label
      // lengths and areas "mm Proj" (the panel: "mm (Imager Pixel Spacing)"), not plain mm.
      return m.spacingSource === 'imager' ? { type: Enums.CalibrationTypes.PROJECTION } : undefined;
    case 'voiLutModule':
      return m.windowCenter !== undefined && m.windowWidth !== undefined
        ? { windowCenter: [m.windowCenter], windowWidth: [m.windowWidth] }
        : undefined;
    case 'modalityLutModule':
      return { rescaleSlope: 1, rescaleIntercept: 0 };
    default:
      return undefined;
  }
}
