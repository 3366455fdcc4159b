/**
 * Mutual TLS between the federation's services, after DICOM PS3.15 BCP 195 (non-downgrading): TLS 1.2
 * or 1.3 only, AEAD cipher suites only, the federation root as the only trust anchor, client
 * certificates required and checked against the CRLs; then, above TLS, the peer's certificate must
 * validate for its role and belong to the current trust group.
 */
import type { X509Certificate as NodeX509 } from 'node:crypto';
import { request as httpsRequest, type RequestOptions, type ServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { readOrganisation } from '../../core/pki/extensions.ts';
import { crlPem } from '../../core/pki/issue.ts';
import { OID, type OrgRole } from '../../core/pki/oids.ts';
import { memberOf } from '../../core/pki/trust-group.ts';
import { validateCertificate } from '../../core/pki/validate.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import type { LoadedPki } from './pki-dir.ts';

/** TLS 1.2 suites with forward secrecy and AEAD; TLS 1.3's suites are all AEAD. */
export const AEAD_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
].join(':');

export interface TlsIdentity {
  /** PEM of the party's organisation certificate and PKCS#8 key. */
  readonly cert: string;
  readonly key: string;
  readonly pki: LoadedPki;
}

function common(id: TlsIdentity) {
  return {
    cert: id.cert,
    key: id.key,
    ca: id.pki.root.toString('pem'),
    crl: id.pki.crls.map(crlPem),
    minVersion: 'TLSv1.2' as const,
    ciphers: AEAD_CIPHERS,
    ecdhCurve: 'X25519:P-256',
  };
}

/** HTTPS server options: client certificates required and verified by the TLS layer. */
export function mtlsServerOptions(id: TlsIdentity): ServerOptions {
  return { ...common(id), requestCert: true, rejectUnauthorized: true, honorCipherOrder: true };
}

/** Options of an HTTPS request to another service of the federation (server verified, we present ours). */
export function mtlsClientOptions(id: TlsIdentity): RequestOptions {
  return { ...common(id), rejectUnauthorized: true };
}

export interface Peer {
  readonly subject: string;
  readonly role: OrgRole;
  readonly memberId: string;
  readonly cert: X509Certificate;
}

/**
 * Checks the TLS peer above the handshake: chain to the root for the TLS role, revocation, trust-group
 * membership and, when given, one of the expected organisation roles. Returns the peer or why not.
 */
export async function checkPeer(
  socket: TLSSocket,
  pki: LoadedPki,
  usage: 'tls-client' | 'tls-server',
  roles?: readonly OrgRole[],
): Promise<{ ok: true; peer: Peer } | { ok: false; reason: string }> {
  const raw = socket.getPeerX509Certificate?.();
  if (!raw) return { ok: false, reason: 'the peer presented no certificate' };
  const cert = new X509Certificate(new Uint8Array((raw as NodeX509).raw));
  const v = await validateCertificate(cert, {
    anchors: [pki.root],
    intermediates: pki.intermediates,
    crls: pki.crls,
    usage,
  });
  if (!v.ok) return { ok: false, reason: v.reason };
  const ext = cert.getExtension(OID.organisationExtension);
  if (!ext)
    return { ok: false, reason: `${cert.subject} is not an organisation of the federation` };
  const org = readOrganisation(ext.value);
  if (roles && !roles.includes(org.role))
    return { ok: false, reason: `${cert.subject} is a ${org.role}, not a ${roles.join(' or ')}` };
  const member = await memberOf(pki.trustGroup, cert);
  if (!member || member.role !== org.role)
    return {
      ok: false,
      reason: `${cert.subject} is not in trust group version ${pki.trustGroup.version}`,
    };
  return { ok: true, peer: { subject: cert.subject, role: org.role, memberId: member.id, cert } };
}

export interface MtlsResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** One HTTPS request over mutual TLS, body buffered (service-to-service calls are small or streamed elsewhere). */
export function mtlsFetch(
  url: string,
  id: TlsIdentity,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: Uint8Array | string;
    /** Give up (and reject) after this long without an answer. */
    timeoutMs?: number;
  } = {},
): Promise<MtlsResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { ...mtlsClientOptions(id), method: init.method ?? 'GET', headers: init.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (init.timeoutMs)
      req.setTimeout(init.timeoutMs, () =>
        req.destroy(new Error(`no answer from ${new URL(url).origin} in ${init.timeoutMs} ms`)),
      );
    if (init.body !== undefined) req.write(init.body);
    req.end();
  });
}
