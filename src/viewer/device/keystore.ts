/**
 * This browser's device identity: a non-extractable ECDSA P-256 key pair (signs session handshakes)
 * and a non-extractable ECDH P-256 key pair (opens the key part of tickets), kept in IndexedDB as
 * CryptoKey objects — the private keys never exist outside WebCrypto — with the certificate chain the
 * hospital issued for them.
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
}

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

export const loadIdentity = (): Promise<DeviceIdentity | undefined> =>
  tx<DeviceIdentity | undefined>(
    'readonly',
    (s) => s.get('device') as IDBRequest<DeviceIdentity | undefined>,
  );

const saveIdentity = (id: DeviceIdentity): Promise<IDBValidKey> =>
  tx('readwrite', (s) => s.put(id, 'device'));

export const forgetIdentity = (): Promise<undefined> => tx('readwrite', (s) => s.delete('device'));

/**
 * Enrols this browser for a signed-in clinician: new non-extractable keys, a CSR (public keys only),
 * the certificate chain back from the hospital, all kept in IndexedDB.
 */
export async function enrol(
  send: (csr: string) => Promise<{ chain: string[] }>,
  clinicianId: string,
): Promise<DeviceIdentity> {
  const signing = await generateSigningKeys(false);
  const encryption = await generateEncryptionKeys(false);
  const csr = await createCsr(signing, encryption.publicKey, `device of ${clinicianId}`);
  const { chain } = await send(csr);
  const identity: DeviceIdentity = { signing, encryption, chain, clinicianId };
  await saveIdentity(identity);
  return identity;
}
