/**
 * The sample model the protection works on: pixel data as a sequence of words (1, 2 or 4 bytes,
 * little endian), each holding a value of `bitsStored` bits (signed or not) under untouched high
 * bits, arranged in planes (one per frame and sample) that prediction scans row by row, and cut into
 * square tiles for tamper localization. Every image a hospital sends maps onto it:
 * - grey or colour, colour-by-pixel or colour-by-plane, any number of frames;
 * - native YBR_FULL_422: each pair of pixels is one unit of four samples (Y1 Y2 Cb Cr);
 * - 1-bit images: the packed bytes are the samples (8-bit unsigned), rows of ⌈columns/8⌉ bytes,
 *   the last row possibly short when frames are not byte aligned;
 * - Float Pixel Data: the 32-bit patterns as unsigned integers.
 */
import { ZtvError } from '../errors.ts';
import { isChromaSubsampled, type PixelInfo } from '../dicom/pixels.ts';

export interface Geometry {
  readonly frames: number;
  /** Rows and columns of units per frame (a unit is a pixel, a 422 pixel pair, or a packed byte). */
  readonly rows: number;
  readonly cols: number;
  /** Columns of the very last row (equals `cols` except for packed 1-bit data). */
  readonly lastRowCols: number;
  /** Samples per unit. */
  readonly spp: number;
  /** Colour-by-plane: each frame holds its sample planes one after the other. */
  readonly planar: boolean;
  readonly wordBytes: 1 | 2 | 4;
  readonly bitsStored: number;
  readonly signed: boolean;
  /** Image pixels per unit horizontally (2 for YBR_FULL_422) — to draw tiles on the image. */
  readonly unitWidth: number;
  /** True when units are packed bytes of a 1-bit image (tiles are not pixel squares). */
  readonly packedBits: boolean;
  /** Total number of samples (words). */
  readonly count: number;
}

/** A plane: the samples of one frame and one channel, as a grid scanned row by row. */
export interface Plane {
  readonly frame: number;
  readonly base: number;
  readonly xStride: number;
  readonly yStride: number;
  readonly width: number;
  readonly height: number;
  readonly lastRowWidth: number;
}

export function geometryOf(info: PixelInfo): Geometry {
  if (info.bitsAllocated === 1) {
    const bytes = Math.ceil((info.rows * info.columns * info.frames) / 8);
    const cols = Math.max(1, Math.ceil(info.columns / 8));
    const rows = Math.ceil(bytes / cols);
    return {
      frames: 1,
      rows,
      cols,
      lastRowCols: bytes - (rows - 1) * cols,
      spp: 1,
      planar: false,
      wordBytes: 1,
      bitsStored: 8,
      signed: false,
      unitWidth: 8,
      packedBits: true,
      count: bytes,
    };
  }
  if (info.bitsAllocated === 64)
    throw new ZtvError('unsupported', 'Double Float Pixel Data (64-bit) cannot be protected');
  const wordBytes = (info.bitsAllocated / 8) as 1 | 2 | 4;
  const float = info.pixelTag !== 0x7fe00010;
  const sub = isChromaSubsampled(info);
  const cols = sub ? info.columns / 2 : info.columns;
  const spp = sub ? 4 : info.samplesPerPixel;
  const planar = !sub && info.planarConfiguration === 1 && spp > 1;
  return {
    frames: info.frames,
    rows: info.rows,
    cols,
    lastRowCols: cols,
    spp,
    planar,
    wordBytes,
    bitsStored: float ? 32 : info.bitsStored,
    signed: !float && info.pixelRepresentation === 1,
    unitWidth: sub ? 2 : 1,
    packedBits: false,
    count: info.frames * info.rows * cols * spp,
  };
}

/** The planes in scan order: frame by frame, sample by sample. */
export function planesOf(g: Geometry): Plane[] {
  const out: Plane[] = [];
  const frameSamples = g.rows * g.cols * g.spp;
  for (let f = 0; f < g.frames; f++) {
    for (let c = 0; c < g.spp; c++) {
      out.push({
        frame: f,
        base: g.planar ? f * frameSamples + c * g.rows * g.cols : f * frameSamples + c,
        xStride: g.planar ? 1 : g.spp,
        yStride: g.planar ? g.cols : g.cols * g.spp,
        width: g.cols,
        height: g.rows,
        lastRowWidth: g.lastRowCols,
      });
    }
  }
  return out;
}

/** Value range of a sample. */
export function valueRange(g: Geometry): { min: number; max: number } {
  const span = 2 ** g.bitsStored;
  return g.signed ? { min: -span / 2, max: span / 2 - 1 } : { min: 0, max: span - 1 };
}

/** A tile: a square of units in one frame; `segments` are its byte ranges in the pixel data. */
export interface Tile {
  readonly frame: number;
  /** Index of the tile within its frame, row-major. */
  readonly index: number;
  /** Position and size in units. */
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export interface TileGrid {
  readonly side: number;
  readonly across: number;
  readonly down: number;
  readonly perFrame: number;
  readonly count: number;
}

export function tileGrid(g: Geometry, side: number): TileGrid {
  const across = Math.ceil(g.cols / side);
  const down = Math.ceil(g.rows / side);
  return { side, across, down, perFrame: across * down, count: across * down * g.frames };
}

export function tileAt(g: Geometry, grid: TileGrid, n: number): Tile {
  const frame = Math.floor(n / grid.perFrame);
  const index = n % grid.perFrame;
  const x = (index % grid.across) * grid.side;
  const y = Math.floor(index / grid.across) * grid.side;
  return {
    frame,
    index,
    x,
    y,
    w: Math.min(grid.side, g.cols - x),
    h: Math.min(grid.side, g.rows - y),
  };
}

/**
 * Calls `fn(start, end)` for each contiguous byte range of tile `t` (row segments; per plane when
 * colour-by-plane). The ranges of all tiles partition the pixel data exactly.
 */
export function forEachTileSegment(
  g: Geometry,
  t: Tile,
  fn: (start: number, end: number) => void,
): void {
  const wb = g.wordBytes;
  const frameSamples = g.rows * g.cols * g.spp;
  const planesPerFrame = g.planar ? g.spp : 1;
  const unitSamples = g.planar ? 1 : g.spp;
  for (let p = 0; p < planesPerFrame; p++) {
    const base = t.frame * frameSamples + p * g.rows * g.cols;
    for (let y = t.y; y < t.y + t.h; y++) {
      const rowWidth = y === g.rows - 1 ? g.lastRowCols : g.cols;
      const x1 = Math.min(t.x + t.w, rowWidth);
      if (x1 <= t.x) continue;
      const s = (base + (y * g.cols + t.x) * unitSamples) * wb;
      fn(s, s + (x1 - t.x) * unitSamples * wb);
    }
  }
}
