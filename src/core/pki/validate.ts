/**
 * Certification path validation (after RFC 5280 §6, for the federation's short chains): issuer by
 * name, key identifier and signature up to a pinned anchor; validity periods; basic constraints, path
 * length and key usage; revocation from each issuer's CRL. Every rejection has a code and a sentence.
 */
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509Crl,
} from './x509.ts';
import { toHex } from '../bytes.ts';

export type RejectCode =
  | 'expired'
  | 'not-yet-valid'
  | 'revoked'
  | 'unknown-issuer'
  | 'bad-signature'
  | 'wrong-usage'
  | 'not-a-ca'
  | 'path-too-long'
  | 'crl-missing'
  | 'crl-stale'
  | 'not-in-trust-group'
  | 'wrong-role'
  | 'malformed';

export interface Rejected {
  readonly ok: false;
  readonly code: RejectCode;
  readonly reason: string;
}

export interface Accepted {
  readonly ok: true;
  /** Leaf first, anchor last. */
  readonly chain: readonly X509Certificate[];
}

export type Validation = Accepted | Rejected;

export type Usage = 'signature' | 'tls-server' | 'tls-client' | 'ca';

export interface ValidationContext {
  /** Pinned trust anchors (the federation's root). */
  readonly anchors: readonly X509Certificate[];
  readonly intermediates?: readonly X509Certificate[];
  readonly crls?: readonly X509Crl[];
  /** When the certificate must have been valid (a seal's signing time, or now). Default: now. */
  readonly at?: Date;
  /** When revocation is judged (always now unless a test says otherwise). */
  readonly now?: Date;
  /** What the leaf is used for. */
  readonly usage: Usage;
  /** Refuse when an issuer in the path has no current CRL (fail closed). Default true. */
  readonly requireCrl?: boolean;
}

const reject = (code: RejectCode, reason: string): Rejected => ({ ok: false, code, reason });

const cn = (c: X509Certificate): string => /CN=([^,]+)/.exec(c.subject)?.[1] ?? c.subject;

function sameCert(a: X509Certificate, b: X509Certificate): boolean {
  const [x, y] = [new Uint8Array(a.rawData), new Uint8Array(b.rawData)];
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function keyIdMatches(child: X509Certificate, parent: X509Certificate): boolean {
  const aki = child.getExtension(AuthorityKeyIdentifierExtension);
  const ski = parent.getExtension(SubjectKeyIdentifierExtension);
  if (!aki?.keyId || !ski) return true;
  return aki.keyId.toLowerCase() === ski.keyId.toLowerCase();
}

async function signedBy(child: X509Certificate, parent: X509Certificate): Promise<boolean> {
  try {
    return await child.verify({ publicKey: parent.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** Builds the path from `leaf` to an anchor, by name, key identifier and signature. */
async function buildPath(leaf: X509Certificate, ctx: ValidationContext): Promise<Validation> {
  const pool = [...(ctx.intermediates ?? []), ...ctx.anchors];
  const chain: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth < 6; depth++) {
    if (ctx.anchors.some((a) => sameCert(current, a))) return { ok: true, chain };
    const named = pool.filter((c) => c.subject === current.issuer && keyIdMatches(current, c));
    if (named.length === 0)
      return reject(
        'unknown-issuer',
        `${cn(current)} is issued by ${current.issuer}, which is not a known authority`,
      );
    let parent: X509Certificate | undefined;
    for (const c of named) if (await signedBy(current, c)) parent = c;
    if (!parent)
      return reject(
        'bad-signature',
        `the signature on ${cn(current)} does not verify with its issuer's key`,
      );
    chain.push(parent);
    current = parent;
  }
  return reject('path-too-long', `no anchor within 6 certificates above ${cn(leaf)}`);
}

function checkUsage(leaf: X509Certificate, usage: Usage): Rejected | undefined {
  const ku = leaf.getExtension(KeyUsagesExtension);
  const bc = leaf.getExtension(BasicConstraintsExtension);
  if (usage === 'ca') {
    if (!bc?.ca) return reject('not-a-ca', `${cn(leaf)} is not a certification authority`);
    if (!ku || !(ku.usages & KeyUsageFlags.keyCertSign))
      return reject('wrong-usage', `${cn(leaf)} may not sign certificates`);
    return undefined;
  }
  if (bc?.ca) return reject('wrong-usage', `${cn(leaf)} is a CA certificate, not an end entity`);
  if (!ku || !(ku.usages & KeyUsageFlags.digitalSignature))
    return reject('wrong-usage', `${cn(leaf)} may not be used for digital signatures`);
  if (usage === 'tls-server' || usage === 'tls-client') {
    const eku = leaf.getExtension(ExtendedKeyUsageExtension);
    const want = usage === 'tls-server' ? ExtendedKeyUsage.serverAuth : ExtendedKeyUsage.clientAuth;
    if (!eku?.usages.includes(want))
      return reject('wrong-usage', `${cn(leaf)} may not be used as a TLS ${usage.slice(4)}`);
  }
  return undefined;
}

async function checkRevocation(
  cert: X509Certificate,
  issuer: X509Certificate,
  ctx: ValidationContext,
  now: Date,
): Promise<Rejected | undefined> {
  const candidates = (ctx.crls ?? []).filter((c) => c.issuer === issuer.subject);
  let crl: X509Crl | undefined;
  for (const c of candidates) {
    const ok = await issuer.publicKey
      .export()
      .then((publicKey) => c.verify({ publicKey }))
      .catch(() => false);
    if (ok && (!crl || c.thisUpdate > crl.thisUpdate)) crl = c;
  }
  if (!crl) {
    if (ctx.requireCrl === false) return undefined;
    return reject(
      'crl-missing',
      `no valid revocation list of ${cn(issuer)} is available to check ${cn(cert)}`,
    );
  }
  if (crl.nextUpdate && crl.nextUpdate < now)
    return reject(
      'crl-stale',
      `the revocation list of ${cn(issuer)} expired on ${crl.nextUpdate.toISOString()}`,
    );
  const entry = crl.findRevoked(cert);
  if (entry && entry.revocationDate <= now)
    return reject('revoked', `${cn(cert)} was revoked on ${entry.revocationDate.toISOString()}`);
  return undefined;
}

/** Validates `leaf` for `usage` against the context; returns the chain or why not. */
export async function validateCertificate(
  leaf: X509Certificate,
  ctx: ValidationContext,
): Promise<Validation> {
  const at = ctx.at ?? new Date();
  const now = ctx.now ?? new Date();
  const path = await buildPath(leaf, ctx);
  if (!path.ok) return path;
  const chain = path.chain;
  for (const c of chain) {
    if (c.notBefore > at)
      return reject('not-yet-valid', `${cn(c)} is not valid before ${c.notBefore.toISOString()}`);
    if (c.notAfter < at)
      return reject('expired', `${cn(c)} expired on ${c.notAfter.toISOString()}`);
  }
  for (let i = 1; i < chain.length; i++) {
    const issuer = chain[i]!;
    const bc = issuer.getExtension(BasicConstraintsExtension);
    if (!bc?.ca)
      return reject(
        'not-a-ca',
        `${cn(issuer)} issued ${cn(chain[i - 1]!)} but is not a certification authority`,
      );
    const ku = issuer.getExtension(KeyUsagesExtension);
    if (ku && !(ku.usages & KeyUsageFlags.keyCertSign))
      return reject('wrong-usage', `${cn(issuer)} may not sign certificates`);
    // Intermediates between this issuer and the leaf must not exceed its path length.
    if (bc.pathLength !== undefined && i - 1 > bc.pathLength)
      return reject(
        'path-too-long',
        `${cn(issuer)} allows ${bc.pathLength} intermediate CA(s) below it`,
      );
  }
  const usage = checkUsage(leaf, ctx.usage);
  if (usage) return usage;
  for (let i = 0; i + 1 < chain.length; i++) {
    const r = await checkRevocation(chain[i]!, chain[i + 1]!, ctx, now);
    if (r) return r;
  }
  return path;
}

/** SHA-256 thumbprint of a certificate, hex: how the federation names certificates. */
export async function thumbprint(c: X509Certificate): Promise<string> {
  return toHex(new Uint8Array(await c.getThumbprint('SHA-256')));
}

export { X509Certificate, X509Crl };
