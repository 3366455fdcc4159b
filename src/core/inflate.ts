/**
 * Raw DEFLATE (RFC 1951) inflated with a cap on its output: the input is fed to fflate's streaming
 * inflater a few KiB at a time, so data that would inflate far beyond the cap (a 200 KB "deflated
 * DICOM" that inflates to 200 MB) is refused once the output passes it, having held no more than the
 * cap and one step's output (at most ~1032 times the step: DEFLATE's largest ratio).
 */
import { Inflate } from 'fflate';
import { ZtvError } from './errors.ts';

/** Input fed to the inflater per step. */
const STEP = 4096;

/**
 * `data` inflated; a ZtvError `unsupported` when it inflates to more than `cap` bytes, `not-dicom`
 * (or `code`) when it does not inflate. `what` names the data in the errors' sentences.
 */
export function inflateCapped(
  data: Uint8Array,
  cap: number,
  what: string,
  code: 'not-dicom' | 'integrity' = 'not-dicom',
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let over = false;
  const inflater = new Inflate((chunk) => {
    total += chunk.length;
    if (total > cap) over = true;
    else chunks.push(chunk);
  });
  try {
    for (let o = 0; o < data.length && !over; o += STEP)
      inflater.push(data.subarray(o, Math.min(o + STEP, data.length)), o + STEP >= data.length);
    if (data.length === 0) inflater.push(data, true);
  } catch {
    throw new ZtvError(code, `${what} does not inflate`);
  }
  if (over)
    throw new ZtvError(
      'unsupported',
      `${what} inflates to more than ${cap} bytes, the most this reader accepts`,
    );
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
