/**
 * Certificate issuance with @peculiar/x509 on WebCrypto (ECDSA P-256, SHA-256): the root CA,
 * organisation certificates (producer, consumer, cloud, authority), hospital CAs that certify their
 * clinicians' devices, device certificates from CSRs, and CRLs. Profiles in docs/trust.md.
 */
import { ECDH_P256 } from '../crypto/ecdh.ts';
import type { X509Certificate, X509Crl } from './x509.ts';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  Pkcs10CertificateRequestGenerator,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  X509CrlGenerator,
  X509CrlReason,
  type Extension,
} from './x509.ts';
import { exactCopy, randomBytes, toHex } from '../bytes.ts';
import { assertInput, ZtvError } from '../errors.ts';
import {
  clinicianExtension,
  encryptionKeyExtension,
  organisationExtension,
  type ClinicianInfo,
  type OrganisationInfo,
} from './extensions.ts';
import { OID } from './oids.ts';

export const SIGNING_ALGORITHM: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
export const EC_KEY: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const ECDH_KEY: EcKeyGenParams = ECDH_P256;

const YEAR = 365 * 24 * 3600_000;

/** A certificate with the private key that signs as it (issuers, services). */
export interface Issuer {
  readonly cert: X509Certificate;
  readonly privateKey: CryptoKey;
}

/** A positive random serial number (RFC 5280: ≤ 20 octets, positive). */
const serial = (): string => {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return toHex(b);
};

/** X.500 names: RFC 4514 text, values escaped. */
export function dn(fields: { CN: string; O?: string; OU?: string }): string {
  const esc = (s: string) => s.replace(/([,+"\\<>;=#])/g, '\\$1');
  return [
    `CN=${esc(fields.CN)}`,
    fields.OU && `OU=${esc(fields.OU)}`,
    fields.O && `O=${esc(fields.O)}`,
  ]
    .filter(Boolean)
    .join(', ');
}

export function generateSigningKeys(extractable = true): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_KEY, extractable, [
    'sign',
    'verify',
  ]) as Promise<CryptoKeyPair>;
}

export function generateEncryptionKeys(extractable = true): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ECDH_KEY, extractable, [
    'deriveBits',
    'deriveKey',
  ]) as Promise<CryptoKeyPair>;
}

async function spkiOf(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey('spki', key));
}

export interface Validity {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

function validity(v: Validity | undefined, years: number): { notBefore: Date; notAfter: Date } {
  const notBefore = v?.notBefore ?? new Date(Date.now() - 5 * 60_000);
  return { notBefore, notAfter: v?.notAfter ?? new Date(notBefore.getTime() + years * YEAR) };
}

/** The root of the federation: self-signed, CA, signs certificates and CRLs. */
export async function createRootCa(
  name: string,
  keys: CryptoKeyPair,
  v?: Validity,
): Promise<X509Certificate> {
  return X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: dn({ CN: name, O: name }),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(v, 10),
    extensions: [
      new BasicConstraintsExtension(true, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
}

async function issue(
  issuer: Issuer,
  subject: string,
  publicKey: CryptoKey,
  extensions: Extension[],
  v: { notBefore: Date; notAfter: Date },
): Promise<X509Certificate> {
  if (v.notAfter.getTime() > issuer.cert.notAfter.getTime())
    throw new ZtvError(
      'bad-input',
      `a certificate cannot outlive its issuer (${issuer.cert.notAfter.toISOString()})`,
    );
  return X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: issuer.cert.subject,
    publicKey,
    signingKey: issuer.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...v,
    extensions: [
      ...extensions,
      await SubjectKeyIdentifierExtension.create(publicKey),
      await AuthorityKeyIdentifierExtension.create(issuer.cert),
    ],
  });
}

export interface OrganisationRequest extends OrganisationInfo {
  readonly name: string;
  readonly publicKey: CryptoKey;
  /** ECDH public key others encrypt to (tickets to the cloud), as a key or SPKI bytes. */
  readonly encryptionKey?: CryptoKey | Uint8Array;
  /** Host names and addresses the organisation's TLS endpoints answer on. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validity?: Validity;
}

/** An organisation: signs seals/traces/tickets, authenticates in mutual TLS as server and client. */
export async function issueOrganisation(
  ca: Issuer,
  req: OrganisationRequest,
): Promise<X509Certificate> {
  assertInput(
    req.name.length > 0 && req.name.length <= 64,
    'an organisation name has 1 to 64 characters',
  );
  const names = [
    ...(req.dnsNames ?? ['localhost']).map((value) => ({ type: 'dns' as const, value })),
    ...(req.ipAddresses ?? ['127.0.0.1']).map((value) => ({ type: 'ip' as const, value })),
  ];
  return issue(
    ca,
    dn({ CN: req.name, O: req.name, OU: req.role }),
    req.publicKey,
    [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
      new SubjectAlternativeNameExtension(names),
      organisationExtension({ role: req.role, domain: req.domain }),
      ...(req.encryptionKey
        ? [
            encryptionKeyExtension(
              req.encryptionKey instanceof Uint8Array
                ? req.encryptionKey
                : await spkiOf(req.encryptionKey),
            ),
          ]
        : []),
    ],
    validity(req.validity, 3),
  );
}

/** A hospital's CA for its clinicians' devices: may sign end-entity certificates only. */
export async function issueHospitalCa(
  ca: Issuer,
  req: { name: string; domain: string; publicKey: CryptoKey; validity?: Validity },
): Promise<X509Certificate> {
  return issue(
    ca,
    dn({ CN: `${req.name} Device CA`, O: req.name }),
    req.publicKey,
    [
      new BasicConstraintsExtension(true, 0, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      organisationExtension({ role: 'consumer', domain: req.domain }),
    ],
    validity(req.validity, 5),
  );
}

export interface DeviceRequest {
  readonly clinician: ClinicianInfo;
  readonly hospital: string;
  readonly publicKey: CryptoKey;
  readonly encryptionKey: Uint8Array;
  readonly validity?: Validity;
}

/** A clinician's device: authenticates sessions; its encryption key opens the key part of tickets. */
export async function issueDevice(
  hospitalCa: Issuer,
  req: DeviceRequest,
): Promise<X509Certificate> {
  assertInput(
    /^[A-Za-z0-9._@-]{1,64}$/.test(req.clinician.id),
    'a clinician id is 1 to 64 letters, digits or ._@-',
  );
  return issue(
    hospitalCa,
    dn({ CN: req.clinician.id, O: req.hospital, OU: req.clinician.role }),
    req.publicKey,
    [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth]),
      clinicianExtension(req.clinician),
      encryptionKeyExtension(req.encryptionKey),
    ],
    validity(req.validity, 1),
  );
}

/**
 * A certificate request, made where the keys live (a device's browser, a service): the signing key
 * pair (private part may be non-extractable) signs it; the ECDH public key rides along as a requested
 * extension.
 */
export async function createCsr(
  signing: CryptoKeyPair,
  encryptionPublic: CryptoKey,
  label: string,
): Promise<string> {
  const csr = await Pkcs10CertificateRequestGenerator.create({
    name: dn({ CN: label }),
    keys: signing,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [encryptionKeyExtension(await spkiOf(encryptionPublic))],
  });
  return csr.toString('pem');
}

/** What a CSR asks to certify, once its signature and keys are checked. */
export interface CheckedCsr {
  readonly publicKey: CryptoKey;
  readonly encryptionKey: Uint8Array;
}

/**
 * Checks a CSR (devices and organisations alike): the signature must verify, the key must be ECDSA
 * P-256 and an ECDH P-256 encryption key must ride along. Nothing else in it is trusted.
 */
export async function checkCsr(csrPem: string): Promise<CheckedCsr> {
  let csr: Pkcs10CertificateRequest;
  try {
    csr = new Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new ZtvError('bad-input', 'the certificate request is not a PKCS#10 CSR');
  }
  if (!(await csr.verify().catch(() => false)))
    throw new ZtvError('bad-input', 'the certificate request signature does not verify');
  const algorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256')
    throw new ZtvError('bad-input', 'certified keys must be ECDSA P-256');
  const enc = csr.getExtension(OID.encryptionKeyExtension);
  if (!enc) throw new ZtvError('bad-input', 'the certificate request carries no encryption key');
  const encryptionKey = new Uint8Array(enc.value);
  try {
    await crypto.subtle.importKey('spki', exactCopy(encryptionKey), ECDH_KEY, true, []);
  } catch {
    throw new ZtvError('bad-input', 'the encryption key is not an ECDH P-256 public key');
  }
  return { publicKey: await csr.publicKey.export(EC_KEY, ['verify']), encryptionKey };
}

/**
 * The hospital issues a device certificate from a CSR: the subject and role come from the
 * authenticated clinician, never from the CSR.
 */
export async function issueDeviceFromCsr(
  hospitalCa: Issuer,
  csrPem: string,
  clinician: ClinicianInfo,
  hospital: string,
  v?: Validity,
): Promise<X509Certificate> {
  const { publicKey, encryptionKey } = await checkCsr(csrPem);
  return issueDevice(hospitalCa, {
    clinician,
    hospital,
    publicKey,
    encryptionKey,
    ...(v ? { validity: v } : {}),
  });
}

/** A CRL in PEM with the standard "X509 CRL" label (RFC 7468), which openssl requires. */
export const crlPem = (crl: X509Crl): string =>
  crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----');

export interface Revocation {
  readonly serialNumber: string;
  readonly date: Date;
  readonly reason?: X509CrlReason;
}

/** A CRL of `issuer`, valid from `thisUpdate` to `nextUpdate`. */
export async function createCrl(
  issuer: Issuer,
  revoked: readonly Revocation[],
  thisUpdate = new Date(),
  nextUpdate = new Date(thisUpdate.getTime() + 7 * 24 * 3600_000),
): Promise<X509Crl> {
  return X509CrlGenerator.create({
    issuer: issuer.cert.subject,
    thisUpdate,
    nextUpdate,
    signingKey: issuer.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    entries: revoked.map((r) => ({
      serialNumber: r.serialNumber,
      revocationDate: r.date,
      reason: r.reason ?? X509CrlReason.unspecified,
    })),
    extensions: [await AuthorityKeyIdentifierExtension.create(issuer.cert)],
  });
}
