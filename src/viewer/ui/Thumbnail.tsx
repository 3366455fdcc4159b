/** A series thumbnail: one verified slice drawn small at its own window, on a canvas. */
import { useEffect, useRef } from 'react';
import type { OpenedInstance } from '../cornerstone/images.ts';

const SIZE = 96;

/** Grey levels (0–255) of a frame sampled to size×size at the image's window (RGB is drawn as is). */
export function thumbnailPixels(inst: OpenedInstance, size = SIZE): Uint8ClampedArray<ArrayBuffer> {
  const f = inst.frames[0]!;
  const m = inst.meta;
  const out = new Uint8ClampedArray(size * size * 4);
  const src =
    f.kind === 'int16'
      ? new Int16Array(f.pixels)
      : f.kind === 'uint16'
        ? new Uint16Array(f.pixels)
        : f.kind === 'float32'
          ? new Float32Array(f.pixels)
          : new Uint8Array(f.pixels);
  const c = m.windowCenter ?? (f.min + f.max) / 2;
  const w = Math.max(1, m.windowWidth ?? f.max - f.min);
  const lo = c - w / 2;
  const scale = Math.max(m.rows, m.columns) / size;
  const ox = (size - m.columns / scale) / 2;
  const oy = (size - m.rows / scale) / 2;
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const o = 4 * (y * size + x);
      out[o + 3] = 255;
      const sx = Math.floor((x - ox) * scale);
      const sy = Math.floor((y - oy) * scale);
      if (sx < 0 || sy < 0 || sx >= m.columns || sy >= m.rows) continue;
      if (m.color) {
        const i = 3 * (sy * m.columns + sx);
        out[o] = src[i]!;
        out[o + 1] = src[i + 1]!;
        out[o + 2] = src[i + 2]!;
      } else {
        let g = ((src[sy * m.columns + sx]! - lo) / w) * 255;
        if (m.invert) g = 255 - g;
        out[o] = out[o + 1] = out[o + 2] = g;
      }
    }
  return out;
}

export function Thumbnail({ inst }: { inst?: OpenedInstance }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const ctx = ref.current?.getContext('2d');
    if (!ctx || !inst) return;
    ctx.putImageData(new ImageData(thumbnailPixels(inst), SIZE, SIZE), 0, 0);
  }, [inst]);
  if (!inst) return <div className="thumb-empty" aria-hidden="true" />;
  return (
    <canvas
      ref={ref}
      width={SIZE}
      height={SIZE}
      aria-label="Series thumbnail"
      data-testid="thumbnail"
      data-instance={inst.meta.instanceNumber}
    />
  );
}
