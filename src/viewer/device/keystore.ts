/**
 * This browser's device identity, one per clinician who enrolled it: a non-extractable ECDSA P-256 key
 * pair (signs session handshakes) and a non-extractable ECDH P-256 key pair (opens the key part of
 * tickets), kept in IndexedDB as CryptoKey objects — the private keys never exist outside WebCrypto —
 * with the certificate chain the hospital issued for them and the fingerprint of the federation root
 * the device was enrolled under (its pin; see docs/viewer.md).
 */
import { createCsr, generateEncryptionKeys, generateSigningKeys } from '../../core/pki/issue.ts';

const DB = 'ztv-device';
const STORE = 'identity';

export interface DeviceIdentity {
  readonly signing: CryptoKeyPair;
  readonly encryption: CryptoKeyPair;
  /** PEM chain: device certificate, hospital device CA. Empty until enrolled. */
  readonly chain: readonly string[];
  /** The clinician this device was enrolled for. */
  readonly clinicianId?: string;
  /** SHA-256 (hex) of the federation root certificate this device was enrolled under. */
  readonly rootSha256?: string;
}

const keyOf = (clinicianId: string): string => `device:${clinicianId}`;

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB is unavailable'));
  });
}

async function tx<T>(
  mode: IDBTransactionMode,
  fn: (s: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = fn(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
    });
  } finally {
    db.close();
  }
}

/** The identity enrolled for `clinicianId`; without one, the most recently enrolled identity. */
export async function loadIdentity(clinicianId?: string): Promise<DeviceIdentity | undefined> {
  if (clinicianId !== undefined)
    return tx<DeviceIdentity | undefined>(
      'readonly',
      (s) => s.get(keyOf(clinicianId)) as IDBRequest<DeviceIdentity | undefined>,
    );
  const last = await tx<IDBValidKey | undefined>(
    'readonly',
    (s) => s.get('last') as IDBRequest<IDBValidKey | undefined>,
  );
  return typeof last === 'string'
    ? tx<DeviceIdentity | undefined>(
        'readonly',
        (s) => s.get(last) as IDBRequest<DeviceIdentity | undefined>,
      )
    : undefined;
}

async function saveIdentity(id: DeviceIdentity, clinicianId: string): Promise<void> {
  await tx('readwrite', (s) => s.put(id, keyOf(clinicianId)));
  await tx('readwrite', (s) => s.put(keyOf(clinicianId), 'last'));
}

/** Forgets the identity of one clinician (after a revocation, or to enrol again). */
export const forgetIdentity = (clinicianId: string): Promise<undefined> =>
  tx('readwrite', (s) => s.delete(keyOf(clinicianId)));

/**
 * Enrols this browser for a signed-in clinician: new non-extractable keys, a CSR (public keys only),
 * the certificate chain back from the hospital, all kept in IndexedDB.
 */
export async function enrol(
  send: (csr: string) => Promise<{ chain: string[] }>,
  clinicianId: string,
  rootSha256?: string,
): Promise<DeviceIdentity> {
  const signing = await generateSigningKeys(false);
  const encryption = await generateEncryptionKeys(false);
  const csr = await createCsr(signing, encryption.publicKey, `device of ${clinicianId}`);
  const { chain } = await send(csr);
  const identity: DeviceIdentity = {
    signing,
    encryption,
    chain,
    clinicianId,
    ...(rootSha256 ? { rootSha256 } : {}),
  };
  await saveIdentity(identity, clinicianId);
  return identity;
}
