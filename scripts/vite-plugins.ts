/**
 * Vite plugins of the viewer build (vite.config.ts, the end-to-end test pages, Vitest), run in Node:
 * the decode workers' warm-up material made at build time, and the Node built-ins that third-party
 * browser code names only on its Node branch.
 */
import type { Plugin } from 'vite';
import { randomBytes, toBase64 } from '../src/core/bytes.ts';
import { generateKeyPairPem, signingKeyFromPem } from '../src/core/crypto/keys.ts';
import { DataSet } from '../src/core/dicom/dataset.ts';
import { T } from '../src/core/dicom/tags.ts';
import { writePart10 } from '../src/core/dicom/write.ts';
import { generateEncryptionKeys } from '../src/core/pki/issue.ts';
import { protect, traceIdFrom, traceProtected } from '../src/core/protect/index.ts';
import { issueTicket } from '../src/core/ticket/ticket.ts';
import type { WarmUpMaterial } from '../src/viewer/pipeline/warmup.ts';

const SIDE = 512;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
/** As many image keys as the CT series of the demo (and the benchmark) has. */
const TICKET_IMAGES = 150;

/** A smooth disc with texture, 12 bits stored, windowed: realistic enough for the data hiding. */
export function syntheticCt(): Uint8Array {
  const ds = new DataSet();
  ds.setText(T.SOPClassUID, 'UI', CT_IMAGE_STORAGE);
  ds.setText(T.SOPInstanceUID, 'UI', '2.25.1');
  ds.setText(T.Modality, 'CS', 'CT');
  ds.setText(T.PatientID, 'LO', 'WARMUP');
  ds.setText(T.StudyInstanceUID, 'UI', '2.25.2');
  ds.setText(T.SeriesInstanceUID, 'UI', '2.25.3');
  ds.setUint16(T.SamplesPerPixel, 1);
  ds.setText(T.PhotometricInterpretation, 'CS', 'MONOCHROME2');
  ds.setUint16(T.Rows, SIDE);
  ds.setUint16(T.Columns, SIDE);
  ds.setUint16(T.BitsAllocated, 16);
  ds.setUint16(T.BitsStored, 12);
  ds.setUint16(T.HighBit, 11);
  ds.setUint16(T.PixelRepresentation, 0);
  ds.setText(T.WindowCenter, 'DS', '40');
  ds.setText(T.WindowWidth, 'DS', '400');
  ds.setText(T.RescaleIntercept, 'DS', '-1024');
  ds.setText(T.RescaleSlope, 'DS', '1');
  const px = new Uint16Array(SIDE * SIDE);
  let seed = 12345;
  for (let y = 0; y < SIDE; y++)
    for (let x = 0; x < SIDE; x++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const r = Math.hypot(x - SIDE / 2, y - SIDE / 2) / (SIDE / 2);
      const body = r < 0.8 ? 1040 + 60 * Math.cos(x / 9) * Math.sin(y / 7) : 24;
      px[y * SIDE + x] = Math.max(0, Math.min(4095, Math.round(body + ((seed >>> 24) % 9))));
    }
  ds.set({ tag: T.PixelData, vr: 'OW', value: new Uint8Array(px.buffer) });
  return writePart10({ sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '2.25.1' }, ds).bytes;
}

/**
 * The synthetic slice protected and traced by throw-away signers, and a ticket key part for it and
 * 149 random keys, issued to a throw-away device. Only public keys and throw-away secrets leave here.
 */
export async function makeWarmUpMaterial(): Promise<WarmUpMaterial> {
  const producer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const cloud = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const trace = traceIdFrom('warm-up');
  const p = await protect(syntheticCt(), { signer: producer, pseudonymKey: new Uint8Array(32) });
  const container = await traceProtected(p.bytes, { signer: cloud, traceId: trace });
  const [device, cloudEncryption] = await Promise.all([
    generateEncryptionKeys(true),
    generateEncryptionKeys(true),
  ]);
  const ref = 'warm-up';
  const images = [
    { id: ref, key: p.imageKey, trace },
    ...Array.from({ length: TICKET_IMAGES - 1 }, (_, i) => ({
      id: `warm-up-${i + 1}`,
      key: randomBytes(32),
      trace,
    })),
  ];
  const issuedAt = Date.now();
  const ticket = await issueTicket({
    producer,
    producerId: 'warm-up',
    cloudId: 'warm-up',
    cloudEncryptionKey: cloudEncryption.publicKey,
    deviceId: 'warm-up',
    deviceEncryptionKey: device.publicKey,
    images,
    ttlMs: 60_000,
    purpose: 'TREAT',
    now: issuedAt,
  });
  return {
    container: toBase64(container),
    ref,
    ticket: ticket.keys,
    deviceId: 'warm-up',
    deviceKey: await crypto.subtle.exportKey('jwk', device.privateKey),
    producer: toBase64(producer.publicKey.spki),
    cloud: toBase64(cloud.publicKey.spki),
    producerId: 'warm-up',
    issuedAt,
  };
}

const WARMUP_ID = 'virtual:ztv-warmup';

/** `virtual:ztv-warmup`: the warm-up material, made once per build (or test run). */
export function warmUpMaterial(): Plugin {
  let code: Promise<string> | undefined;
  return {
    name: 'ztv-warm-up-material',
    resolveId: (id) => (id === WARMUP_ID ? `\0${WARMUP_ID}` : null),
    load(id) {
      if (id !== `\0${WARMUP_ID}`) return null;
      code ??= makeWarmUpMaterial().then((m) => `export default ${JSON.stringify(m)};\n`);
      return code;
    },
  };
}

/**
 * Node built-ins that browser code of these packages names only on its Node branch: Emscripten's
 * glue of the Cornerstone codecs (`if (ENVIRONMENT_IS_NODE) { require("fs"); require("path") }`) and
 * @oozcitak/url (`require("url")` for international domain names, in the XML writer vtk.js bundles
 * and the viewer never calls). They resolve to an empty module, which is what Vite's
 * browser-external stub is, without a warning at every build; any other browser import of a Node
 * built-in still gets Vite's warning.
 */
const NODE_BRANCH_ONLY: readonly { readonly importer: RegExp; readonly ids: readonly string[] }[] =
  [
    {
      importer: /\/node_modules\/@cornerstonejs\/codec-[a-z0-9-]+\/dist\/[a-z0-9_]+\.js$/,
      ids: ['fs', 'path'],
    },
    { importer: /\/node_modules\/@oozcitak\/url\/lib\/URLAlgorithm\.js$/, ids: ['url'] },
  ];
const EMPTY_ID = '\0ztv-node-branch-only';

export function nodeBranchOnlyBuiltins(): Plugin {
  return {
    name: 'ztv-node-branch-only-builtins',
    enforce: 'pre',
    resolveId(id, importer) {
      if (!importer) return null;
      const hit = NODE_BRANCH_ONLY.some((r) => r.ids.includes(id) && r.importer.test(importer));
      return hit ? `${EMPTY_ID}:${id}` : null;
    },
    load: (id) => (id.startsWith(EMPTY_ID) ? 'export default {};\n' : null),
  };
}

/** The plugins every build of viewer code needs, its workers included. */
export const viewerPlugins = (): Plugin[] => [warmUpMaterial(), nodeBranchOnlyBuiltins()];
