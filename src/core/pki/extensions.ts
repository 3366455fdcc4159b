/**
 * The platform's certificate extensions, DER-encoded with asn1js:
 *   Organisation ::= SEQUENCE { role UTF8String, domain OBJECT IDENTIFIER }
 *   Clinician    ::= SEQUENCE { id UTF8String, role UTF8String, domain OBJECT IDENTIFIER }
 *   EncryptionKey ::= SubjectPublicKeyInfo
 */
import { Extension } from './x509.ts';
import * as asn1js from 'asn1js';
import { exactCopy } from '../bytes.ts';
import { ZtvError } from '../errors.ts';
import { OID, ORG_ROLES, STRUCTURAL_ROLES, type OrgRole, type StructuralRole } from './oids.ts';

export interface OrganisationInfo {
  readonly role: OrgRole;
  readonly domain: string;
}

export interface ClinicianInfo {
  readonly id: string;
  readonly role: StructuralRole;
  readonly domain: string;
}

const der = (v: asn1js.AsnType): ArrayBuffer => v.toBER(false);

function parseSeq(raw: ArrayBuffer, what: string): asn1js.AsnType[] {
  const parsed = asn1js.fromBER(raw);
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence))
    throw new ZtvError('bad-input', `the ${what} extension is not a DER SEQUENCE`);
  return parsed.result.valueBlock.value;
}

const utf8Of = (v: asn1js.AsnType | undefined, what: string): string => {
  if (!(v instanceof asn1js.Utf8String))
    throw new ZtvError('bad-input', `the ${what} extension is malformed`);
  return v.valueBlock.value;
};
const oidOf = (v: asn1js.AsnType | undefined, what: string): string => {
  if (!(v instanceof asn1js.ObjectIdentifier))
    throw new ZtvError('bad-input', `the ${what} extension is malformed`);
  return v.valueBlock.toString();
};

export function organisationExtension(info: OrganisationInfo): Extension {
  const v = new asn1js.Sequence({
    value: [
      new asn1js.Utf8String({ value: info.role }),
      new asn1js.ObjectIdentifier({ value: info.domain }),
    ],
  });
  return new Extension(OID.organisationExtension, false, der(v));
}

export function readOrganisation(value: ArrayBuffer): OrganisationInfo {
  const [role, domain] = parseSeq(value, 'organisation');
  const r = utf8Of(role, 'organisation');
  if (!(ORG_ROLES as readonly string[]).includes(r))
    throw new ZtvError('bad-input', `unknown organisation role ${r}`);
  return { role: r as OrgRole, domain: oidOf(domain, 'organisation') };
}

export function clinicianExtension(info: ClinicianInfo): Extension {
  const v = new asn1js.Sequence({
    value: [
      new asn1js.Utf8String({ value: info.id }),
      new asn1js.Utf8String({ value: info.role }),
      new asn1js.ObjectIdentifier({ value: info.domain }),
    ],
  });
  return new Extension(OID.clinicianExtension, false, der(v));
}

export function readClinician(value: ArrayBuffer): ClinicianInfo {
  const [id, role, domain] = parseSeq(value, 'clinician');
  const r = utf8Of(role, 'clinician');
  if (!(STRUCTURAL_ROLES as readonly string[]).includes(r))
    throw new ZtvError('bad-input', `unknown structural role ${r}`);
  return {
    id: utf8Of(id, 'clinician'),
    role: r as StructuralRole,
    domain: oidOf(domain, 'clinician'),
  };
}

export function encryptionKeyExtension(spki: Uint8Array): Extension {
  return new Extension(OID.encryptionKeyExtension, false, exactCopy(spki).buffer);
}
