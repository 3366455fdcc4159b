/**
 * Who signed a statement, from the federation's PKI: hospitals (role assignments) by their
 * organisation key id, clinicians (delegations) by the device certificate chain carried in the
 * statement's x5c header — both validated, not revoked, and admitted by the current trust group.
 */
import { toHex } from '../../core/bytes.ts';
import { keyIdOf, verifyKeyFromSpki } from '../../core/crypto/keys.ts';
import type { KeyResolver } from '../../core/policy/statements.ts';
import { memberOf } from '../../core/pki/trust-group.ts';
import { validateCertificate } from '../../core/pki/validate.ts';
import { deviceValidator } from '../../core/session/peers.ts';
import { PemConverter } from '../../core/pki/x509.ts';
import type { PkiView } from '../../core/pki/resolver.ts';

/**
 * The federation's trust as the resolvers read it: the current view, and one fresh enough for a
 * decision (a service's `LiveTrust`).
 */
export interface TrustSource {
  view(): PkiView;
  fresh(): Promise<PkiView>;
}

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
      return { id: member.id, key: (await verifyKeyFromSpki(spki)).cryptoKey };
    }
    return undefined;
  };
}

export function clinicianResolver(trust: TrustSource): KeyResolver {
  const validate = deviceValidator(() => trust.view());
  return async (kid, header) => {
    if (!Array.isArray(header.x5c) || header.x5c.length === 0) return undefined;
    const chain = header.x5c.map((b64) =>
      PemConverter.encode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer, 'CERTIFICATE'),
    );
    await trust.fresh();
    const check = await validate(chain);
    if (!check.ok || toHex(keyIdOf(check.peer.spki)) !== kid) return undefined;
    return {
      id: check.peer.attributes.clinicianId ?? '',
      key: (await verifyKeyFromSpki(check.peer.spki)).cryptoKey,
      roles: [check.peer.attributes.role ?? ''],
    };
  };
}
