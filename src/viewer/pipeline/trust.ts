/**
 * The decode workers' trust: the federation's PKI rebuilt from the hospital's published material,
 * refused unless its root is the pinned one and the trust group is signed by that root; seal and trace
 * signers resolved through it (certificate of the right role, chain to the root, CRLs, trust group) —
 * the core's pkiResolver, memoised per signer for the validity window of its chain so that a series of
 * 150 slices costs one chain validation per signer, not 300. DOM-free: runs in workers and in Node.
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { keyIdOf } from '../../core/crypto/keys.ts';
import { ZtvError } from '../../core/errors.ts';
import { readOrganisation } from '../../core/pki/extensions.ts';
import { OID } from '../../core/pki/oids.ts';
import { pkiResolver, type PkiView } from '../../core/pki/resolver.ts';
import { memberOf, verifyTrustGroup } from '../../core/pki/trust-group.ts';
import { validateCertificate } from '../../core/pki/validate.ts';
import { X509Certificate, X509Crl } from '../../core/pki/x509.ts';
import type { SignerResolver, SignerRole, TrustedSigner } from '../../core/protect/signers.ts';
import type { CertificateInfo, ChainReport, TrustBundle } from './protocol.ts';

export const sha256Of = async (c: X509Certificate): Promise<string> =>
  toHex(new Uint8Array(await c.getThumbprint('SHA-256')));

/** The PKI view of a bundle, or an integrity error saying why it is refused. */
export async function viewOf(bundle: TrustBundle): Promise<PkiView> {
  if (!/^[0-9a-f]{64}$/i.test(bundle.rootSha256 ?? ''))
    throw new ZtvError('integrity', 'the viewer has no pinned authority root');
  let root: X509Certificate;
  try {
    root = new X509Certificate(bundle.root);
  } catch {
    throw new ZtvError('integrity', 'the authority root certificate is unreadable');
  }
  if ((await sha256Of(root)) !== bundle.rootSha256.toLowerCase())
    throw new ZtvError(
      'integrity',
      'the authority root the hospital serves is not the root this viewer pinned',
    );
  return {
    root,
    intermediates: bundle.intermediates.map((p) => new X509Certificate(p)),
    organisations: bundle.organisations.map((p) => new X509Certificate(p)),
    crls: bundle.crls.map((p) => new X509Crl(p)),
    trustGroup: await verifyTrustGroup(bundle.trustGroup, root),
  };
}

interface Memo {
  readonly signer: TrustedSigner;
  /** The signing times for which every certificate of the chain is within its validity. */
  readonly from: number;
  readonly to: number;
}

/**
 * pkiResolver with a memo: a successful resolution is reused for another signing time inside the
 * chain's validity window (the only way the time enters validation); revocation and trust-group
 * membership are judged against this bundle, which the worker replaces when the trust changes.
 */
export function memoResolver(view: PkiView): SignerResolver {
  const base = pkiResolver(view);
  const memo = new Map<string, Memo>();
  const all = [view.root, ...view.intermediates, ...view.organisations];
  return {
    async resolve(keyId, role, at) {
      const k = `${role}:${toHex(keyId)}`;
      const t = at.getTime();
      const hit = memo.get(k);
      if (hit && t >= hit.from && t <= hit.to) return { ok: true, signer: hit.signer };
      const r = await base.resolve(keyId, role, at);
      if (r.ok) {
        const chain = all.filter((c) => r.signer.chain.includes(c.subject));
        memo.set(k, {
          signer: r.signer,
          from: Math.max(...chain.map((c) => c.notBefore.getTime())),
          to: Math.min(...chain.map((c) => c.notAfter.getTime())),
        });
      }
      return r;
    },
  };
}

async function certificateInfo(c: X509Certificate, view: PkiView): Promise<CertificateInfo> {
  const ext = c.getExtension(OID.organisationExtension);
  const org = ext ? readOrganisation(ext.value) : undefined;
  const member = await memberOf(view.trustGroup, c);
  return {
    subject: c.subject,
    issuer: c.issuer,
    serial: c.serialNumber,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    sha256: await sha256Of(c),
    ...(org ? { role: org.role } : {}),
    ...(member ? { member: member.id } : {}),
  };
}

/** The chain of the signer with `keyIdHex` for `role`, validated now, for the auditor view. */
export async function chainReport(
  view: PkiView,
  keyIdHex: string,
  role: SignerRole,
  at: Date,
): Promise<ChainReport> {
  const leaf = view.organisations.find(
    (c) => toHex(keyIdOf(new Uint8Array(c.publicKey.rawData))) === keyIdHex,
  );
  if (!leaf)
    return {
      keyId: keyIdHex,
      status: 'refused',
      detail: `no certificate of the federation has key id ${keyIdHex}`,
      certificates: [],
    };
  const v = await validateCertificate(leaf, {
    anchors: [view.root],
    intermediates: view.intermediates,
    crls: view.crls,
    at,
    usage: 'signature',
  });
  const r = await pkiResolver(view).resolve(fromHex(keyIdHex), role, at);
  const chain = v.ok ? v.chain : [leaf];
  return {
    keyId: keyIdHex,
    status: r.ok ? 'valid' : 'refused',
    detail: r.ok
      ? `valid ${role} certificate at ${at.toISOString()}, chained to the pinned root, not revoked, in trust group version ${view.trustGroup.version}`
      : r.reason,
    certificates: await Promise.all(chain.map((c) => certificateInfo(c, view))),
  };
}
