/** Test page: signs in to a consumer hospital and enrols this browser with the viewer's device module. */
import { X509Certificate } from '../../src/core/pki/x509.ts';
import { enrol, loadIdentity } from '../../src/viewer/device/keystore.ts';

declare global {
  interface Window {
    enrolDevice(
      consumer: string,
      user: string,
      password: string,
    ): Promise<{ subject: string; chainLength: number }>;
    inspectStoredKeys(): Promise<{ extractable: boolean[]; signs: boolean; chainLength: number }>;
  }
}

window.enrolDevice = async (consumer, user, password) => {
  const login = await fetch(`${consumer}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, password }),
  });
  if (!login.ok) throw new Error(`login failed: ${login.status}`);
  const { token } = (await login.json()) as { token: string };
  const id = await enrol(async (csr) => {
    const r = await fetch(`${consumer}/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ csr }),
    });
    if (!r.ok) throw new Error(`enrollment failed: ${r.status} ${await r.text()}`);
    return (await r.json()) as { chain: string[] };
  }, user);
  const subject = /CN=[^,]+/.exec(new X509Certificate(id.chain[0]!).subject)?.[0] ?? '';
  return { subject, chainLength: id.chain.length };
};

window.inspectStoredKeys = async () => {
  const id = await loadIdentity();
  if (!id) throw new Error('no identity stored');
  const sig = await crypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    id.signing.privateKey,
    new Uint8Array(8),
  );
  const ok = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    id.signing.publicKey,
    sig,
    new Uint8Array(8),
  );
  return {
    extractable: [id.signing.privateKey.extractable, id.encryption.privateKey.extractable],
    signs: ok,
    chainLength: id.chain.length,
  };
};
