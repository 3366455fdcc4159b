/**
 * Who signed a statement or a policy file, and who an organisation is, from the federation's PKI:
 * hospitals (role assignments, directory entries) by their organisation key id, clinicians
 * (delegations) by the device certificate chain carried in the statement's x5c header, policy files
 * by the organisation certificate in their signature's x5c header — each validated, not revoked, and
 * admitted by the current trust group.
 */
import { toHex } from '../../core/bytes.ts';
import { keyIdOf, verifyKeyFromSpki } from '../../core/crypto/keys.ts';
import type { KeyResolver } from '../../core/policy/statements.ts';
import type { PolicySignerResolver } from '../../core/policy/signature.ts';
import { readOrganisation } from '../../core/pki/extensions.ts';
import { OID, ORG_ROLES } from '../../core/pki/oids.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import { memberOf } from '../../core/pki/trust-group.ts';
import { validateCertificate } from '../../core/pki/validate.ts';
import { deviceValidator, organisationValidator } from '../../core/session/peers.ts';
import { PemConverter, X509Certificate } from '../../core/pki/x509.ts';

/**
 * The federation's trust as the resolvers read it: the current view, and one fresh enough for a
 * decision (a service's `LiveTrust`).
 */
export interface TrustSource {
  view(): PkiView;
  fresh(): Promise<PkiView>;
}

const pemOf = (b64: string): string =>
  PemConverter.encode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer, 'CERTIFICATE');

export function issuerResolver(trust: TrustSource): KeyResolver {
  return async (kid) => {
    const pki = await trust.fresh();
    for (const cert of pki.organisations) {
      const spki = new Uint8Array(cert.publicKey.rawData);
      if (toHex(keyIdOf(spki)) !== kid) continue;
      const v = await validateCertificate(cert, {
        anchors: [pki.root],
        intermediates: pki.intermediates,
        crls: pki.crls,
        usage: 'signature',
      });
      const member = v.ok ? await memberOf(pki.trustGroup, cert) : undefined;
      if (!member) return undefined;
      return {
        id: member.id,
        key: (await verifyKeyFromSpki(spki)).cryptoKey,
        organization: member.id,
        organizationRole: member.role,
      };
    }
    return undefined;
  };
}

export function clinicianResolver(trust: TrustSource): KeyResolver {
  const validate = deviceValidator(() => trust.view());
  return async (kid, header) => {
    if (!Array.isArray(header.x5c) || header.x5c.length === 0) return undefined;
    await trust.fresh();
    const check = await validate(header.x5c.map(pemOf));
    if (!check.ok || toHex(keyIdOf(check.peer.spki)) !== kid) return undefined;
    return {
      id: check.peer.attributes.clinicianId ?? '',
      key: (await verifyKeyFromSpki(check.peer.spki)).cryptoKey,
      roles: [check.peer.attributes.role ?? ''],
      ...(check.peer.attributes.hospital ? { organization: check.peer.attributes.hospital } : {}),
    };
  };
}

/** An organisation of the current trust group (not a hospital's device CA), with its role. */
export function organizationResolver(
  trust: TrustSource,
): (id: string) => Promise<{ readonly role: string } | undefined> {
  return async (id) => {
    const pki = await trust.fresh();
    const m = pki.trustGroup.members.find((x) => x.id === id && x.organization === undefined);
    return m ? { role: m.role } : undefined;
  };
}

/**
 * Who signed a policy file: an organisation certificate (the first of x5c) of the federation, as the
 * sessions validate organisations — to the root, unrevoked, in the trust group — with the policy
 * domain its certificate is for.
 */
export function policySignerResolver(view: () => PkiView): PolicySignerResolver {
  const validate = organisationValidator(view, ORG_ROLES);
  return async (x5c) => {
    let leaf: string;
    try {
      leaf = pemOf(String(x5c[0]));
    } catch {
      return 'the certificate in x5c is not base64 DER';
    }
    const check = await validate([leaf]);
    if (!check.ok) return check.reason;
    const ext = new X509Certificate(leaf).getExtension(OID.organisationExtension)!;
    return {
      key: (await verifyKeyFromSpki(check.peer.spki)).cryptoKey,
      organization: check.peer.attributes.organisation ?? '',
      role: check.peer.attributes.role ?? '',
      domain: readOrganisation(ext.value).domain,
    };
  };
}
