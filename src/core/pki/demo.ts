/**
 * The demo federation's PKI, made in one call: a root CA; organisation certificates for the
 * authority, the producer hospital, the consumer hospital and the cloud (each with an ECDH encryption
 * key); a device CA per hospital; CRLs of every CA; and trust group version 1 with every organisation.
 * `ztv pki init` writes it to files; tests and `npm start` use it directly.
 */
import type { X509Certificate, X509Crl } from './x509.ts';
import type { FlattenedJWS } from 'jose';
import {
  createCrl,
  createRootCa,
  generateEncryptionKeys,
  generateSigningKeys,
  issueHospitalCa,
  issueOrganisation,
  type Issuer,
  type Validity,
} from './issue.ts';
import { OID, type OrgRole } from './oids.ts';
import { signTrustGroup, type TrustGroup } from './trust-group.ts';
import { thumbprint } from './validate.ts';

export interface Organisation {
  readonly id: string;
  readonly name: string;
  readonly role: OrgRole;
  readonly cert: X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly encryption: CryptoKeyPair;
}

export interface HospitalCa {
  readonly id: string;
  readonly cert: X509Certificate;
  readonly keys: CryptoKeyPair;
}

export interface DemoPki {
  readonly root: Issuer & { keys: CryptoKeyPair };
  readonly organisations: Record<'authority' | 'producer' | 'consumer' | 'cloud', Organisation>;
  readonly hospitalCas: Record<'producer-ca' | 'consumer-ca', HospitalCa>;
  readonly crls: readonly X509Crl[];
  readonly trustGroup: TrustGroup;
  readonly trustGroupJws: FlattenedJWS;
}

export const DEMO_NAMES = {
  root: 'ZTV Federation Root CA',
  authority: 'ZTV Central Authority',
  producer: 'Saint-Louis Producer Hospital',
  consumer: 'Riverside Consumer Hospital',
  cloud: 'Nimbus Imaging Cloud',
} as const;

export async function createDemoPki(v?: Validity): Promise<DemoPki> {
  const rootKeys = await generateSigningKeys();
  const rootCert = await createRootCa(DEMO_NAMES.root, rootKeys, v);
  const root = { cert: rootCert, privateKey: rootKeys.privateKey, keys: rootKeys };
  const domains: Record<OrgRole, string> = {
    authority: OID.domainFederation,
    producer: OID.domainProducer,
    consumer: OID.domainConsumer,
    cloud: OID.domainFederation,
  };
  const org = async (role: OrgRole): Promise<Organisation> => {
    const keys = await generateSigningKeys();
    const encryption = await generateEncryptionKeys();
    const name = DEMO_NAMES[role];
    const cert = await issueOrganisation(root, {
      name,
      role,
      domain: domains[role],
      publicKey: keys.publicKey,
      encryptionKey: encryption.publicKey,
      ...(v ? { validity: v } : {}),
    });
    return { id: `${role}`, name, role, cert, keys, encryption };
  };
  const organisations = {
    authority: await org('authority'),
    producer: await org('producer'),
    consumer: await org('consumer'),
    cloud: await org('cloud'),
  };
  const hospitalCa = async (
    id: 'producer-ca' | 'consumer-ca',
    name: string,
    domain: string,
  ): Promise<HospitalCa> => {
    const keys = await generateSigningKeys();
    const cert = await issueHospitalCa(root, {
      name,
      domain,
      publicKey: keys.publicKey,
      ...(v ? { validity: v } : {}),
    });
    return { id, cert, keys };
  };
  const hospitalCas = {
    'producer-ca': await hospitalCa('producer-ca', DEMO_NAMES.producer, OID.domainProducer),
    'consumer-ca': await hospitalCa('consumer-ca', DEMO_NAMES.consumer, OID.domainConsumer),
  };
  const crls = [
    await createCrl(root, []),
    await createCrl(
      {
        cert: hospitalCas['producer-ca'].cert,
        privateKey: hospitalCas['producer-ca'].keys.privateKey,
      },
      [],
    ),
    await createCrl(
      {
        cert: hospitalCas['consumer-ca'].cert,
        privateKey: hospitalCas['consumer-ca'].keys.privateKey,
      },
      [],
    ),
  ];
  const trustGroup: TrustGroup = {
    version: 1,
    issuedAt: new Date().toISOString(),
    members: [
      ...(await Promise.all(
        Object.values(organisations).map(async (o) => ({
          id: o.id,
          name: o.name,
          role: o.role,
          certificate: await thumbprint(o.cert),
        })),
      )),
      // Hospital device CAs are members too: a device is admitted when its hospital's CA is.
      ...(await Promise.all(
        Object.values(hospitalCas).map(async (ca) => ({
          id: ca.id,
          name: ca.cert.subject,
          role: (ca.id === 'producer-ca' ? 'producer' : 'consumer') as OrgRole,
          certificate: await thumbprint(ca.cert),
          organization: ca.id === 'producer-ca' ? 'producer' : 'consumer',
        })),
      )),
    ],
  };
  return {
    root,
    organisations,
    hospitalCas,
    crls,
    trustGroup,
    trustGroupJws: await signTrustGroup(trustGroup, root),
  };
}
