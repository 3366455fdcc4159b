/** Image key files: the one secret that opens a protected image, as JSON, written with mode 0600. */
import { fromBase64Url, toBase64Url } from '../core/bytes.ts';
import { ZtvError } from '../core/errors.ts';
import type { Output } from '../services/common/files.ts';
import { readInput } from './common.ts';

interface ImageKeyFile {
  format: 'ztv-image-key';
  version: 1;
  /** SOP Instance UID of the protected image the key opens. */
  sopInstanceUid: string;
  key: string;
}

/** The image key file for `path`, to be written (mode 0600) together with its protected image. */
export function imageKeyOutput(path: string, key: Uint8Array, sopInstanceUid: string): Output {
  const body: ImageKeyFile = {
    format: 'ztv-image-key',
    version: 1,
    sopInstanceUid,
    key: toBase64Url(key),
  };
  return { path, data: `${JSON.stringify(body, null, 2)}\n`, mode: 0o600 };
}

export function readImageKey(path: string): Uint8Array {
  const text = new TextDecoder().decode(readInput(path, 'image key file'));
  let body: Partial<ImageKeyFile>;
  try {
    body = JSON.parse(text) as Partial<ImageKeyFile>;
  } catch {
    throw new ZtvError('bad-key', `${path} is not an image key file (not JSON)`);
  }
  if (body.format !== 'ztv-image-key' || body.version !== 1 || typeof body.key !== 'string')
    throw new ZtvError('bad-key', `${path} is not a version 1 image key file`);
  const key = fromBase64Url(body.key);
  if (key.length !== 16 && key.length !== 32)
    throw new ZtvError(
      'bad-key',
      `${path} holds a ${key.length}-byte key; image keys are 16 or 32 bytes`,
    );
  return key;
}
