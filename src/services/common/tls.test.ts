// Mutual TLS on real sockets: a CA-issued organisation certificate of the trust group gets in; no
// certificate, a self-signed one, an old protocol version, a non-AEAD suite or a certificate outside
// the trust group do not.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoPki, type DemoPki } from '../../core/pki/demo.ts';
import { createRootCa, generateSigningKeys, issueOrganisation } from '../../core/pki/issue.ts';
import { OID } from '../../core/pki/oids.ts';
import { signTrustGroup, verifyTrustGroup } from '../../core/pki/trust-group.ts';
import { loadPkiDir, writePkiDir, type LoadedPki } from './pki-dir.ts';
import { checkPeer, mtlsFetch, mtlsServerOptions, type TlsIdentity } from './tls.ts';

let dir: string;
let pkiFiles: LoadedPki;
let demo: DemoPki;
let server: Server;
let url: string;
let trustGroupV2: LoadedPki;

const identity = (party: string, pki = pkiFiles): TlsIdentity => ({
  cert: readFileSync(join(dir, `${party}.pem`), 'utf8'),
  key: readFileSync(join(dir, `${party}.key.pem`), 'utf8'),
  pki,
});

const pem = async (k: CryptoKey) =>
  `-----BEGIN PRIVATE KEY-----\n${Buffer.from(await crypto.subtle.exportKey('pkcs8', k)).toString('base64')}\n-----END PRIVATE KEY-----\n`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-tls-'));
  demo = await createDemoPki();
  await writePkiDir(dir, demo, new Uint8Array(32));
  pkiFiles = await loadPkiDir(dir);
  // The authority's view after the consumer was removed from the trust group.
  const members = demo.trustGroup.members.filter((m) => m.role !== 'consumer');
  const jws = await signTrustGroup(
    { version: 2, issuedAt: new Date().toISOString(), members },
    demo.root,
  );
  trustGroupV2 = {
    ...pkiFiles,
    trustGroup: await verifyTrustGroup(jws, demo.root.cert, 1),
    trustGroupJws: jws,
  };

  server = createServer(mtlsServerOptions(identity('cloud')), (req, res) => {
    const pki = req.headers['x-trust-group'] === '2' ? trustGroupV2 : pkiFiles;
    void checkPeer(req.socket as TLSSocket, pki, 'tls-client', ['producer', 'consumer']).then(
      (r) => {
        res.writeHead(r.ok ? 200 : 403, { 'content-type': 'text/plain' });
        res.end(r.ok ? `hello ${r.peer.memberId}` : r.reason);
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw HTTPS attempt with arbitrary TLS options; resolves to the status or the handshake error. */
function attempt(options: Record<string, unknown>): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { ca: pkiFiles.root.toString('pem'), ...options }, (res) => {
      res.resume();
      resolve(String(res.statusCode));
    });
    req.on('error', (e) => resolve(`error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    req.end();
  });
}

describe('mutual TLS between services', () => {
  it('admits a producer with its CA-issued certificate', async () => {
    const r = await mtlsFetch(url, identity('producer'));
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello producer');
  });

  it('refuses a client without a certificate at the handshake', async () => {
    expect(await attempt({})).toMatch(/^error/);
  });

  it('refuses a self-signed client certificate at the handshake', async () => {
    const keys = await generateSigningKeys();
    const self = await createRootCa('Self Signed', keys);
    expect(await attempt({ cert: self.toString('pem'), key: await pem(keys.privateKey) })).toMatch(
      /^error/,
    );
  });

  it('refuses TLS 1.1 and non-AEAD cipher suites', async () => {
    const id = identity('producer');
    expect(
      await attempt({ cert: id.cert, key: id.key, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }),
    ).toMatch(/^error/);
    expect(
      await attempt({
        cert: id.cert,
        key: id.key,
        maxVersion: 'TLSv1.2',
        ciphers: 'ECDHE-ECDSA-AES128-SHA256',
      }),
    ).toMatch(/^error/);
  });

  it('refuses, above TLS, a valid certificate outside the current trust group or of the wrong role', async () => {
    const consumer = identity('consumer');
    const r = await mtlsFetch(url, consumer, { headers: { 'x-trust-group': '2' } });
    expect(r.status).toBe(403);
    expect(r.body.toString()).toMatch(/not in trust group version 2/);
    const cloudAsClient = await mtlsFetch(url, identity('cloud'));
    expect(cloudAsClient.status).toBe(403);
    expect(cloudAsClient.body.toString()).toMatch(/is a cloud, not a producer or consumer/);
  });

  it('refuses a CA-issued certificate of another federation', async () => {
    const keys = await generateSigningKeys();
    const otherRoot = await createRootCa('Other Root', keys);
    const orgKeys = await generateSigningKeys();
    const cert = await issueOrganisation(
      { cert: otherRoot, privateKey: keys.privateKey },
      {
        name: 'Other Producer',
        role: 'producer',
        domain: OID.domainProducer,
        publicKey: orgKeys.publicKey,
      },
    );
    expect(
      await attempt({ cert: cert.toString('pem'), key: await pem(orgKeys.privateKey) }),
    ).toMatch(/^error/);
  });
});
