/** RLE Lossless (PS3.5 Annex G): PackBits segments, one per byte plane, most significant first. */
import { ZtvError } from '../../errors.ts';

/**
 * Decodes one RLE frame into native little-endian bytes. Samples come out interleaved
 * (colour-by-pixel) when `interleave` is true, else colour-by-plane.
 */
export function decodeRleFrame(
  frame: Uint8Array,
  pixels: number,
  samplesPerPixel: number,
  bytesPerSample: number,
  interleave: boolean,
): Uint8Array {
  if (frame.length < 64)
    throw new ZtvError('not-dicom', 'RLE frame is shorter than its 64-byte header');
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = dv.getUint32(0, true);
  const expected = samplesPerPixel * bytesPerSample;
  if (segments !== expected)
    throw new ZtvError(
      'not-dicom',
      `RLE frame has ${segments} segments where ${expected} were expected`,
    );
  // PackBits makes at most 128 bytes of every 2 (a run): a frame too small for its header's size
  // cannot decode whole, and is refused before anything of that size is allocated.
  if (pixels * expected > 64 * frame.length)
    throw new ZtvError(
      'truncated',
      `RLE frame of ${frame.length} bytes cannot hold the ${pixels * expected} bytes its header announces`,
    );
  const out = new Uint8Array(pixels * expected);
  for (let s = 0; s < segments; s++) {
    const start = dv.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? dv.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || start > end)
      throw new ZtvError('not-dicom', `RLE segment ${s + 1} has offsets outside the frame`);
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // segments are MSB first
    const step = interleave ? expected : bytesPerSample;
    let o = interleave
      ? sample * bytesPerSample + byteInSample
      : sample * pixels * bytesPerSample + byteInSample;
    let written = 0;
    let i = start;
    while (i < end && written < pixels) {
      const n = (frame[i++]! << 24) >> 24; // signed header byte
      if (n >= 0) {
        for (let k = 0; k <= n && written < pixels && i < end; k++, written++, o += step)
          out[o] = frame[i++]!;
      } else if (n !== -128) {
        const v = frame[i++]!;
        for (let k = 0; k < 1 - n && written < pixels; k++, written++, o += step) out[o] = v;
      }
    }
    if (written < pixels)
      throw new ZtvError(
        'truncated',
        `RLE segment ${s + 1} ends after ${written} of ${pixels} bytes`,
      );
  }
  return out;
}
