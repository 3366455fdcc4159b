/** Web Worker of the decoders test page: parses a DICOM file and decodes its pixels with src/core. */
import { fromBase64, toHex } from '../../src/core/bytes.ts';
import { parseDicom } from '../../src/core/dicom/parse.ts';
import { readPixelData } from '../../src/core/dicom/pixels.ts';

export interface DecodeJob {
  file: string;
}

export interface Decoded {
  pixelsSha256?: string;
  error?: string;
}

self.onmessage = async (e: MessageEvent<DecodeJob>) => {
  try {
    const px = await readPixelData(parseDicom(fromBase64(e.data.file)));
    const digest = await crypto.subtle.digest('SHA-256', px.data.slice());
    self.postMessage({ pixelsSha256: toHex(new Uint8Array(digest)) } satisfies Decoded);
  } catch (err) {
    self.postMessage({ error: String(err) } satisfies Decoded);
  }
};
