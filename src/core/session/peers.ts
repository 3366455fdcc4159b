/**
 * Who may open a session: validators of the certificate chain a peer presents in the handshake — a
 * clinician's device (chain through its hospital's device CA, that hospital in the trust group) or an
 * organisation of the federation (a trust-group member of an expected role).
 */
import { toBase64Url, toHex } from '../bytes.ts';
import { readClinician, readOrganisation } from '../pki/extensions.ts';
import { OID, type OrgRole } from '../pki/oids.ts';
import type { PkiView } from '../pki/resolver.ts';
import { memberOf } from '../pki/trust-group.ts';
import { thumbprint, validateCertificate } from '../pki/validate.ts';
import { X509Certificate } from '../pki/x509.ts';
import type { PeerCheck, PeerValidator } from './protocol.ts';

function parseChain(chain: readonly string[]): X509Certificate[] | undefined {
  try {
    // From the peer: anything but PEM text (a null, a number) is no certificate, not a parser's crash.
    if (!chain.every((pem) => typeof pem === 'string')) return undefined;
    return chain.map((pem) => new X509Certificate(pem));
  } catch {
    return undefined;
  }
}

const cn = (c: X509Certificate): string => /CN=([^,]+)/.exec(c.subject)?.[1] ?? c.subject;

/** Devices of clinicians whose hospital (device CA) is in the current trust group. */
export function deviceValidator(view: () => PkiView): PeerValidator {
  return async (chain): Promise<PeerCheck> => {
    const certs = parseChain(chain);
    if (!certs?.length) return { ok: false, reason: 'the certificate chain is not PEM X.509' };
    const [leaf, ...rest] = certs as [X509Certificate, ...X509Certificate[]];
    const pki = view();
    const v = await validateCertificate(leaf, {
      anchors: [pki.root],
      intermediates: [...pki.intermediates, ...rest],
      crls: pki.crls,
      usage: 'tls-client',
    });
    if (!v.ok) return { ok: false, reason: v.reason };
    const ext = leaf.getExtension(OID.clinicianExtension);
    if (!ext) return { ok: false, reason: `${cn(leaf)} is not a clinician's device certificate` };
    const clinician = readClinician(ext.value);
    const hospitalCa = v.chain[1]!;
    const member = await memberOf(pki.trustGroup, hospitalCa);
    if (!member)
      return {
        ok: false,
        reason: `${cn(hospitalCa)} is not in trust group version ${pki.trustGroup.version}`,
      };
    return {
      ok: true,
      peer: {
        subject: leaf.subject,
        thumbprint: await thumbprint(leaf),
        spki: new Uint8Array(leaf.publicKey.rawData),
        attributes: {
          kind: 'device',
          clinicianId: clinician.id,
          role: clinician.role,
          domain: clinician.domain,
          hospital: member.organization ?? member.id,
          serial: leaf.serialNumber,
          encryptionKey: toBase64Url(
            new Uint8Array(
              leaf.getExtension(OID.encryptionKeyExtension)?.value ?? new ArrayBuffer(0),
            ),
          ),
        },
      },
    };
  };
}

/** Organisations of the federation with one of `roles`, admitted by the current trust group. */
export function organisationValidator(
  view: () => PkiView,
  roles: readonly OrgRole[],
): PeerValidator {
  return async (chain): Promise<PeerCheck> => {
    const certs = parseChain(chain);
    if (!certs?.length) return { ok: false, reason: 'the certificate chain is not PEM X.509' };
    const leaf = certs[0]!;
    const pki = view();
    const v = await validateCertificate(leaf, {
      anchors: [pki.root],
      intermediates: pki.intermediates,
      crls: pki.crls,
      usage: 'signature',
    });
    if (!v.ok) return { ok: false, reason: v.reason };
    const ext = leaf.getExtension(OID.organisationExtension);
    const org = ext ? readOrganisation(ext.value) : undefined;
    if (!org || !roles.includes(org.role))
      return { ok: false, reason: `${cn(leaf)} is not a ${roles.join(' or ')}` };
    const member = await memberOf(pki.trustGroup, leaf);
    if (!member)
      return {
        ok: false,
        reason: `${cn(leaf)} is not in trust group version ${pki.trustGroup.version}`,
      };
    return {
      ok: true,
      peer: {
        subject: leaf.subject,
        thumbprint: toHex(new Uint8Array(await leaf.getThumbprint('SHA-256'))),
        spki: new Uint8Array(leaf.publicKey.rawData),
        attributes: { kind: 'organisation', organisation: member.id, role: org.role },
      },
    };
  };
}
