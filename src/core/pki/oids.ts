/**
 * Object identifiers of the platform: certificate extensions, roles and the demo policy domains.
 *
 * They live under 1.3.6.1.4.1.32473, the private enterprise number IANA reserves for documentation
 * and examples (RFC 5612): right for a demo federation, to be replaced by a hospital group's own arc
 * in production. (A UUID arc under 2.25 would need no registration, but its 128-bit component is
 * mis-encoded by @peculiar/x509 and shown as "2.25" by openssl; small arcs work everywhere.)
 */

export const ZTV_ARC = '1.3.6.1.4.1.32473.71';

export const OID = {
  /** Extension: the organisation's role in the federation and its policy domain. */
  organisationExtension: `${ZTV_ARC}.1.1`,
  /** Extension: the clinician a device certificate is for, with structural role and domain. */
  clinicianExtension: `${ZTV_ARC}.1.2`,
  /** Extension: an ECDH P-256 public key (SubjectPublicKeyInfo) for encrypting to the subject. */
  encryptionKeyExtension: `${ZTV_ARC}.1.3`,
  /** Policy domains (ISO/TS 22600-2): the federation, and one per hospital under it. */
  domainFederation: `${ZTV_ARC}.2`,
  domainProducer: `${ZTV_ARC}.2.1`,
  domainConsumer: `${ZTV_ARC}.2.2`,
} as const;

export const ORG_ROLES = ['authority', 'producer', 'consumer', 'cloud'] as const;
export type OrgRole = (typeof ORG_ROLES)[number];

/** Structural roles (ISO/TS 22600-2) carried by device certificates. */
export const STRUCTURAL_ROLES = [
  'physician',
  'radiologist',
  'nurse',
  'administrative',
  'auditor',
] as const;
export type StructuralRole = (typeof STRUCTURAL_ROLES)[number];
