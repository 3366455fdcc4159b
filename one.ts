import { readFileSync } from 'node:fs';
import { parseDicom } from './src/core/dicom/parse.ts';
import { readPixelData } from './src/core/dicom/pixels.ts';
for (const f of process.argv.slice(2)) {
  try {
    const p = parseDicom(new Uint8Array(readFileSync(f)), f);
    const px = await readPixelData(p);
    console.log(
      f,
      p.transferSyntax,
      px.info.columns + 'x' + px.info.rows + 'x' + px.info.frames,
      px.info.bitsAllocated,
      px.info.photometric,
      px.data.length,
      p.warnings.slice(0, 3).join('; '),
    );
  } catch (e) {
    console.log(
      f,
      'ERR',
      (e as Error).message,
      (e as Error).stack?.split('\n').slice(1, 4).join(' | '),
    );
  }
}
