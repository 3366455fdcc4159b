// Mutual TLS on real sockets: a CA-issued organisation certificate of the trust group gets in; no
// certificate, a self-signed one, an old protocol version, a non-AEAD suite or a certificate outside
// the trust group do not. Each refusal is matched by its specific error on both ends, and each is set
// beside a positive control: the same client helper against a deliberately weakened twin of the
// server succeeds, so a refusal cannot come from the client refusing on its own (OpenSSL 3 clients
// refuse TLS 1.1 at their default security level, which would make a naive check vacuous).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server, type ServerOptions } from 'node:https';
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
/** Requests that reached the real server's handler, and its handshake errors (codes), so far. */
let handled = 0;
const serverErrors: string[] = [];
const extra: Server[] = [];

async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `https://127.0.0.1:${(s.address() as AddressInfo).port}/`;
}

/**
 * A deliberately weakened twin of the real server (same certificate and trust anchor), for positive
 * controls: it proves the client helper *can* connect with what the real server refuses.
 */
async function twin(options: ServerOptions): Promise<string> {
  const s = createServer({ ...mtlsServerOptions(identity('cloud')), ...options }, (req, res) => {
    const sock = req.socket as TLSSocket;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(
      `${sock.authorized ? 'authorized' : `unauthorized: ${String(sock.authorizationError)}`}`,
    );
  });
  extra.push(s);
  return listen(s);
}

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
    handled++;
    const pki = req.headers['x-trust-group'] === '2' ? trustGroupV2 : pkiFiles;
    void checkPeer(req.socket as TLSSocket, pki, 'tls-client', ['producer', 'consumer']).then(
      (r) => {
        res.writeHead(r.ok ? 200 : 403, { 'content-type': 'text/plain' });
        res.end(r.ok ? `hello ${r.peer.memberId}` : r.reason);
      },
    );
  });
  server.on('tlsClientError', (e: NodeJS.ErrnoException) => serverErrors.push(e.code ?? e.message));
  url = await listen(server);
});

afterAll(() => {
  server?.close();
  for (const s of extra) s.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Attempt {
  /** HTTP status when the request got through, and the TLS protocol and cipher it used. */
  readonly status?: number;
  readonly body?: string;
  readonly protocol?: string | null;
  readonly cipher?: string;
  /** The client's error code (ERR_SSL_…, EPROTO, ECONNRESET) and OpenSSL's reason, when refused. */
  readonly code?: string;
  readonly reason?: string;
}

/** A raw HTTPS attempt with arbitrary TLS options; resolves to what happened, never rejects. */
function attempt(options: Record<string, unknown>, target = url): Promise<Attempt> {
  return new Promise((resolve) => {
    const req = request(
      target,
      { ca: pkiFiles.root.toString('pem'), agent: false, ...options },
      (res) => {
        const sock = res.socket as TLSSocket;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            protocol: sock.getProtocol?.() ?? null,
            cipher: sock.getCipher?.()?.name,
          }),
        );
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve({
        code: e.code ?? 'unknown',
        reason: /SSL routines:[^:]*:([^:]+):/.exec(e.message)?.[1] ?? e.message,
      }),
    );
    req.end();
  });
}

/** Runs `f`, then returns the handshake errors the real server reported meanwhile. */
async function serverSide<T>(f: () => Promise<T>): Promise<{ result: T; errors: string[] }> {
  serverErrors.length = 0;
  const result = await f();
  await new Promise((r) => setTimeout(r, 50)); // the server's error event may trail the client's
  return { result, errors: serverErrors.splice(0) };
}

/** TLS 1.1 and weak suites need OpenSSL's security level 0 on both ends to be offered at all. */
const LEGACY = { ciphers: 'DEFAULT:@SECLEVEL=0' } as const;

describe('mutual TLS between services', () => {
  it('admits a producer with its CA-issued certificate (through mtlsFetch and the raw helper)', async () => {
    const r = await mtlsFetch(url, identity('producer'));
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello producer');
    const id = identity('producer');
    const raw = await attempt({ cert: id.cert, key: id.key });
    expect(raw).toMatchObject({ status: 200, body: 'hello producer', protocol: 'TLSv1.3' });
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const before = handled;
    const { result, errors } = await serverSide(() => attempt({}));
    expect(result.code).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    expect(errors).toEqual(['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE']);
    expect(handled).toBe(before); // no request reached the application
  });

  it('refuses a self-signed client certificate at the handshake', async () => {
    const keys = await generateSigningKeys();
    const self = await createRootCa('Self Signed', keys);
    const opts = { cert: self.toString('pem'), key: await pem(keys.privateKey) };
    // Control: a twin that asks for the certificate but does not reject says why it fails.
    const lenient = await attempt(opts, await twin({ rejectUnauthorized: false }));
    // (With CRL checking on, OpenSSL's first complaint about an issuer it does not know is that it
    // has no CRL from it.)
    expect(lenient).toMatchObject({ status: 200, body: 'unauthorized: UNABLE_TO_GET_CRL' });
    // The real server drops the connection once the certificate fails (TLS 1.3 checks it after the
    // server's Finished, so the client sees a reset), before any request is handled.
    const before = handled;
    expect(await attempt(opts)).toMatchObject({ code: 'ECONNRESET' });
    expect(handled).toBe(before);
  });

  it('refuses TLS 1.1, which the same client helper negotiates with a server that allows it', async () => {
    const id = identity('producer');
    const tls11 = {
      cert: id.cert,
      key: id.key,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ...LEGACY,
    };
    // Positive control: this OpenSSL can speak TLS 1.1 when both ends allow it (security level 0).
    const weak = await twin({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ...LEGACY });
    const control = await attempt(tls11, weak);
    expect(control).toMatchObject({ status: 200, body: 'authorized', protocol: 'TLSv1.1' });
    // The real server refuses it: it sends protocol_version, having no protocol in common.
    const before = handled;
    const { result, errors } = await serverSide(() => attempt(tls11));
    expect(result).toMatchObject({ code: 'EPROTO', reason: 'tlsv1 alert protocol version' });
    expect(errors).toEqual(['ERR_SSL_UNSUPPORTED_PROTOCOL']);
    expect(handled).toBe(before);
  });

  it('refuses non-AEAD (CBC) suites, which the same client helper negotiates when offered', async () => {
    const id = identity('producer');
    const cbc = {
      cert: id.cert,
      key: id.key,
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-SHA256',
    };
    const weak = await twin({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' });
    const control = await attempt(cbc, weak);
    expect(control).toMatchObject({
      status: 200,
      protocol: 'TLSv1.2',
      cipher: 'ECDHE-ECDSA-AES128-SHA256',
    });
    const before = handled;
    const { result, errors } = await serverSide(() => attempt(cbc));
    expect(result).toMatchObject({ code: 'EPROTO', reason: 'sslv3 alert handshake failure' });
    expect(errors).toEqual(['ERR_SSL_NO_SHARED_CIPHER']);
    expect(handled).toBe(before);
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
    const opts = { cert: cert.toString('pem'), key: await pem(orgKeys.privateKey) };
    const lenient = await attempt(opts, await twin({ rejectUnauthorized: false }));
    expect(lenient).toMatchObject({
      status: 200,
      body: 'unauthorized: UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    const before = handled;
    expect(await attempt(opts)).toMatchObject({ code: 'ECONNRESET' });
    expect(handled).toBe(before);
  });
});
