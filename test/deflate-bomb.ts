/**
 * Deflate bombs for the limits' tests: raw DEFLATE that inflates to `mib` MiB of zeros from about
 * 1 KB a MiB — pieces of one MiB, each compressed on its own and sync-flushed (so they join into one
 * valid stream), then a final empty block — and a Part 10 file in Deflated Explicit VR Little Endian
 * whose data set is such a bomb: the File Meta of the real `small/image_dfl.dcm` before it.
 */
import { readFileSync } from 'node:fs';
import { constants, deflateRawSync } from 'node:zlib';
import { samplePath } from './samples.ts';

export function deflateBomb(mib: number): Uint8Array {
  const piece = deflateRawSync(Buffer.alloc(1024 * 1024), { finishFlush: constants.Z_SYNC_FLUSH });
  const end = deflateRawSync(Buffer.alloc(0));
  return new Uint8Array(Buffer.concat([...Array.from({ length: mib }, () => piece), end]));
}

export function deflatedDicomBomb(mib: number): Uint8Array {
  const file = readFileSync(samplePath('small/image_dfl.dcm'));
  // (0002,0000) UL, its value the length of the rest of the File Meta: 132 + 12 + that.
  const metaEnd = 132 + 12 + file.readUInt32LE(140);
  return new Uint8Array(Buffer.concat([file.subarray(0, metaEnd), deflateBomb(mib)]));
}
