/**
 * Material for the JIT warm-up of a decode worker (job.ts `warmUp`, run once when the worker receives
 * the trust, after sign-in and long before a ticket): a synthetic CT slice of the usual 512x512, 12
 * bits stored, with a window, protected and traced with throw-away keys made here, that the worker
 * opens through its own open path so that a study's images do not pay for cold code; and a ticket
 * opened the same way. Nothing of it is kept or shown.
 */
import { randomBytes } from '../../core/bytes.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import { DataSet } from '../../core/dicom/dataset.ts';
import { T } from '../../core/dicom/tags.ts';
import { writePart10 } from '../../core/dicom/write.ts';
import {
  protect,
  staticResolver,
  traceIdFrom,
  traceProtected,
  type SignerResolver,
} from '../../core/protect/index.ts';
import { issueTicket, openKeysPart } from '../../core/ticket/ticket.ts';

const SIDE = 512;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

/** A smooth disc with texture, 12 bits stored: realistic enough for the data hiding's capacity. */
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
  ds.setText(0x00281050, 'DS', '40');
  ds.setText(0x00281051, 'DS', '400');
  ds.setText(0x00281052, 'DS', '-1024');
  ds.setText(0x00281053, 'DS', '1');
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

/** A synthetic image protected and traced by throw-away signers, with what opens and verifies it. */
export interface SyntheticProtected {
  /** The traced container, as the cloud would serve it. */
  readonly bytes: Uint8Array;
  readonly imageKey: Uint8Array;
  /** Knows exactly the two throw-away signers. */
  readonly resolver: SignerResolver;
  /** The producer's throw-away signing key (for `warmTicket`). */
  readonly producer: SigningKey;
}

export async function syntheticProtected(): Promise<SyntheticProtected> {
  const producer = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const cloud = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const p = await protect(syntheticCt(), { signer: producer, pseudonymKey: new Uint8Array(32) });
  const bytes = await traceProtected(p.bytes, { signer: cloud, traceId: traceIdFrom('warm-up') });
  const resolver = staticResolver({
    producer: [{ key: producer.publicKey, subject: 'CN=warm-up' }],
    cloud: [{ key: cloud.publicKey, subject: 'CN=warm-up' }],
  });
  return { bytes, imageKey: p.imageKey, resolver, producer };
}

/**
 * A ticket's key part as large as a CT series' (150 images), issued to a throw-away device key and
 * opened as the worker opens a real one: JWS verification, ECDH-ES key agreement, AES-GCM, the claim
 * checks. A study's first ticket otherwise pays for all of that code cold, in every worker at once.
 */
export async function warmTicket(producer: SigningKey): Promise<void> {
  const ecdh = { name: 'ECDH', namedCurve: 'P-256' };
  const pair = async () =>
    (await crypto.subtle.generateKey(ecdh, false, ['deriveBits'])) as CryptoKeyPair;
  const [device, cloud] = await Promise.all([pair(), pair()]);
  const images = Array.from({ length: 150 }, (_, i) => ({
    id: `warm-up-${i}`,
    key: randomBytes(32),
    trace: randomBytes(32),
  }));
  const ticket = await issueTicket({
    producer,
    producerId: 'warm-up',
    cloudId: 'warm-up',
    cloudEncryptionKey: cloud.publicKey,
    deviceId: 'warm-up',
    deviceEncryptionKey: device.publicKey,
    images,
    ttlMs: 60_000,
    purpose: 'TREAT',
  });
  const { keys } = await openKeysPart(ticket.keys, {
    resolveProducer: async () => ({ producerId: 'warm-up', key: producer.publicKey }),
    decryptionKey: device.privateKey,
    deviceId: 'warm-up',
  });
  if (keys.size !== images.length) throw new Error('the warm-up ticket lost image keys');
  for (const k of keys.values()) k.fill(0);
  for (const im of images) im.key.fill(0);
}
