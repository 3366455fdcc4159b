/**
 * A SignerResolver over the federation's PKI: a seal or trace key id resolves to an organisation
 * certificate of the right role, whose chain validates to the pinned root at the signing time, which
 * no CRL revokes now, and which the current trust group admits.
 */
import type { X509Certificate, X509Crl } from './x509.ts';
import { toHex } from '../bytes.ts';
import { keyIdOf, verifyKeyFromSpki } from '../crypto/keys.ts';
import type { SignerResolver } from '../protect/signers.ts';
import { readOrganisation } from './extensions.ts';
import { OID } from './oids.ts';
import { memberOf, type TrustGroup } from './trust-group.ts';
import { validateCertificate } from './validate.ts';

export interface PkiView {
  readonly root: X509Certificate;
  readonly intermediates: readonly X509Certificate[];
  /** Organisation certificates known to this party (producers, clouds…). */
  readonly organisations: readonly X509Certificate[];
  readonly crls: readonly X509Crl[];
  readonly trustGroup: TrustGroup;
  /** Test hook for revocation time; default now. */
  readonly now?: () => Date;
}

const subjectCn = (c: X509Certificate): string => /CN=([^,]+)/.exec(c.subject)?.[1] ?? c.subject;

export function pkiResolver(view: PkiView): SignerResolver {
  return {
    async resolve(keyId, role, at) {
      const hex = toHex(keyId);
      let cert: X509Certificate | undefined;
      for (const c of view.organisations)
        if (toHex(keyIdOf(new Uint8Array(c.publicKey.rawData))) === hex) cert = c;
      if (!cert) return { ok: false, reason: `no certificate of the federation has key id ${hex}` };
      const ext = cert.getExtension(OID.organisationExtension);
      const org = ext ? readOrganisation(ext.value) : undefined;
      if (!org || org.role !== role)
        return {
          ok: false,
          reason: `${subjectCn(cert)} is a ${org?.role ?? 'non-federation'} certificate, not a ${role}`,
        };
      const v = await validateCertificate(cert, {
        anchors: [view.root],
        intermediates: view.intermediates,
        crls: view.crls,
        at,
        now: view.now?.() ?? new Date(),
        usage: 'signature',
      });
      if (!v.ok) return { ok: false, reason: v.reason };
      const member = await memberOf(view.trustGroup, cert);
      if (!member || member.role !== role)
        return {
          ok: false,
          reason: `${subjectCn(cert)} is not in trust group version ${view.trustGroup.version}`,
        };
      return {
        ok: true,
        signer: {
          key: await verifyKeyFromSpki(new Uint8Array(cert.publicKey.rawData)),
          subject: cert.subject,
          chain: v.chain.map((c) => c.subject),
        },
      };
    },
  };
}
