/**
 * A real federation for the viewer's end-to-end tests and benchmark: the four services as their own
 * processes on free loopback ports, in a temporary data directory, the CT series outsourced through the
 * producer, and the viewer built with Vite (production mode, as `npm start` serves it) with the new
 * federation's root pinned into the build (ZTV_ROOT_SHA256), served by the consumer hospital.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { certificateSha256 } from '../src/core/client/federation.ts';
import { parseDicom } from '../src/core/dicom/parse.ts';
import { T } from '../src/core/dicom/tags.ts';
import { federationConfig } from '../src/services/common/config.ts';
import { outsource } from '../src/cli/commands/outsource.ts';
import {
  freePorts,
  prepareFederation,
  startFederation,
  type Federation,
} from '../src/services/launcher.ts';
import { REPO_ROOT, sampleFiles } from '../test/samples.ts';

export const CT_SERIES = 'series/ct_chest_LIDC-IDRI-0314';
export const MR_SERIES = 'series/mr_brain_mprage_FNNDSC-adi';

export interface ViewerFederation {
  readonly fed: Federation;
  readonly dir: string;
  /** The viewer's address (the consumer hospital). */
  readonly url: string;
  /** The outsourced CT slices (original files) and their patient. */
  readonly ct: readonly string[];
  readonly ctPatient: string;
  /** The outsourced MR slices, if asked for (sagittal), and their patient. */
  readonly mr: readonly string[];
  readonly mrPatient: string;
  /** The other files outsourced, if asked for, with their patients (dr.bob attends them). */
  readonly extra: readonly { file: string; patient: string }[];
  /** SHA-256 of the federation root, pinned into the viewer build. */
  readonly rootSha256: string;
  close(): Promise<void>;
}

export interface ViewerFederationOptions {
  /** How many CT slices to outsource (default: all 150). */
  readonly slices?: number;
  /** How many MR slices to outsource as well (default none), dr.bob attending their patient too. */
  readonly mrSlices?: number;
  /** The CT files to outsource instead of the first `slices` by name (e.g. contiguous slices). */
  readonly ctFiles?: readonly string[];
  /**
   * Other files to outsource as well (each with a Patient ID: series derived from the CT, a cine
   * loop...), dr.bob attending their patients.
   */
  readonly extra?: readonly string[];
  readonly env?: Record<string, string>;
}

export async function startViewerFederation(
  opts: ViewerFederationOptions = {},
): Promise<ViewerFederation> {
  const dir = mkdtempSync(join(tmpdir(), 'ztv-viewer-'));
  const [authority, producer, cloud, cloudInternal, consumer] = await freePorts(5);
  const config = federationConfig({
    ZTV_DATA: dir,
    ZTV_PORT_AUTHORITY: String(authority),
    ZTV_PORT_PRODUCER: String(producer),
    ZTV_PORT_CLOUD: String(cloud),
    ZTV_PORT_CLOUD_INTERNAL: String(cloudInternal),
    ZTV_PORT_CONSUMER: String(consumer),
    // The DICOM node on a port of the system's choosing: federations run side by side.
    ZTV_PORT_DIMSE: '0',
    ZTV_VIEWER_DIR: join(dir, 'viewer'),
    ZTV_LOG_LEVEL: 'warn',
    ...opts.env,
  });
  try {
    // The PKI first, so that the viewer is built with this federation's root pinned.
    await prepareFederation(config);
    const rootSha256 = await certificateSha256(readFileSync(join(config.pkiDir, 'ca.pem'), 'utf8'));
    const previous = process.env.ZTV_ROOT_SHA256;
    process.env.ZTV_ROOT_SHA256 = rootSha256;
    try {
      await build({
        root: REPO_ROOT,
        logLevel: 'error',
        build: { outDir: config.viewerDir, emptyOutDir: true, sourcemap: false },
      });
    } finally {
      if (previous === undefined) delete process.env.ZTV_ROOT_SHA256;
      else process.env.ZTV_ROOT_SHA256 = previous;
    }
    const ct = opts.ctFiles
      ? [...opts.ctFiles]
      : sampleFiles(CT_SERIES).slice(0, opts.slices ?? 150);
    const ctPatient =
      parseDicom(new Uint8Array(readFileSync(ct[0]!))).dataset.text(T.PatientID) ?? '';
    const mr = opts.mrSlices ? sampleFiles(MR_SERIES).slice(0, opts.mrSlices) : [];
    const mrPatient = mr[0]
      ? (parseDicom(new Uint8Array(readFileSync(mr[0]))).dataset.text(T.PatientID) ?? '')
      : '';
    const extra = (opts.extra ?? []).map((file) => ({
      file,
      patient: parseDicom(new Uint8Array(readFileSync(file))).dataset.text(T.PatientID) ?? '',
    }));
    const fed = await startFederation({
      config,
      demoCare: [...new Set([ctPatient, mrPatient, ...extra.map((x) => x.patient)])]
        .filter(Boolean)
        .map((p) => `dr.bob|attending|${p}`)
        .join(';'),
      verbose: !!process.env.ZTV_VERBOSE,
    });
    try {
      const files = [...ct, ...mr, ...extra.map((x) => x.file)];
      const up = await outsource(fed.urls.producer, fed.secrets.stowToken, files);
      if (up.failed.length || up.stored !== files.length)
        throw new Error(`outsourcing failed: ${up.failed.join('; ')}`);
    } catch (e) {
      await fed.stop();
      throw e;
    }
    return {
      fed,
      dir,
      url: fed.urls.consumer,
      ct,
      ctPatient,
      mr,
      mrPatient,
      extra,
      rootSha256,
      async close() {
        await fed.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Flips `mask` in the high byte of the centre sample (of a 512×512, 16-bit slice) of a blob stored
 * at the cloud — AES-CTR: the same bit of the plaintext — and returns the blob as it was. The Pixel
 * Data value starts after its explicit-VR header (7FE0,0010) OW 0000 <length>. A bit of the high
 * byte is far from the container's LSB planes; a small one keeps a soft-tissue sample in range, so
 * the slice still restores and is drawn, Tampered.
 */
export function corruptCentrePixel(blob: string, mask: number): Buffer {
  const good = readFileSync(blob);
  const header = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0]);
  const start = good.lastIndexOf(header) + 12;
  if (start <= 12 || good.length - start < 512 * 512 * 2)
    throw new Error('no 512×512 16-bit Pixel Data in this blob');
  const bad = Buffer.from(good);
  bad[start + 2 * (256 * 512 + 256) + 1]! ^= mask;
  writeFileSync(blob, bad);
  return good;
}
