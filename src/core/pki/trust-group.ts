/**
 * The trust group: the CA-signed, versioned list of the hospitals and cloud providers of the
 * federation (docs/trust.md, "Trust group"). A party not in the current list is refused even with a
 * valid certificate. Published as a flattened JWS (ES256 by the root CA), so any JOSE library can
 * check it.
 */
import { FlattenedSign, flattenedVerify, type FlattenedJWS } from 'jose';
import type { X509Certificate } from './x509.ts';
import { fromUtf8, utf8 } from '../bytes.ts';
import { ZtvError } from '../errors.ts';
import { ORG_ROLES, type OrgRole } from './oids.ts';
import { thumbprint } from './validate.ts';

export const TRUST_GROUP_TYP = 'ztv-trust-group+jws';

export interface TrustGroupMember {
  /** Stable identifier of the organisation (e.g. "producer-hospital"). */
  readonly id: string;
  readonly name: string;
  readonly role: OrgRole;
  /** SHA-256 thumbprint (hex) of the organisation certificate admitted. */
  readonly certificate: string;
  /** For a hospital's device CA: the organisation (member id) its devices belong to. */
  readonly organization?: string;
}

export interface TrustGroup {
  readonly version: number;
  readonly issuedAt: string;
  readonly members: readonly TrustGroupMember[];
}

export async function signTrustGroup(
  group: TrustGroup,
  ca: { cert: X509Certificate; privateKey: CryptoKey },
): Promise<FlattenedJWS> {
  return new FlattenedSign(utf8(JSON.stringify(group)))
    .setProtectedHeader({
      alg: 'ES256',
      typ: TRUST_GROUP_TYP,
      'x5t#S256': await thumbprint(ca.cert),
    })
    .sign(ca.privateKey);
}

/** Verifies a published trust group against the pinned root; refuses versions older than `minVersion`. */
export async function verifyTrustGroup(
  jws: FlattenedJWS,
  root: X509Certificate,
  minVersion = 0,
): Promise<TrustGroup> {
  let payload: Uint8Array;
  try {
    const key = await root.publicKey.export({ name: 'ECDSA', namedCurve: 'P-256' }, ['verify']);
    const r = await flattenedVerify(jws, key, { algorithms: ['ES256'] });
    if (r.protectedHeader?.typ !== TRUST_GROUP_TYP) throw new Error('wrong type');
    payload = r.payload;
  } catch {
    throw new ZtvError('integrity', 'the trust group is not signed by the pinned authority');
  }
  const group = JSON.parse(fromUtf8(payload)) as TrustGroup;
  if (!Number.isInteger(group.version) || !Array.isArray(group.members))
    throw new ZtvError('integrity', 'the trust group is malformed');
  if (group.version < minVersion)
    throw new ZtvError(
      'integrity',
      `trust group version ${group.version} is older than the version ${minVersion} already seen`,
    );
  for (const m of group.members)
    if (!(ORG_ROLES as readonly string[]).includes(m.role) || !/^[0-9a-f]{64}$/.test(m.certificate))
      throw new ZtvError('integrity', 'the trust group lists a malformed member');
  return group;
}

/** The member a certificate belongs to, with the role it is admitted for, if any. */
export async function memberOf(
  group: TrustGroup,
  cert: X509Certificate,
): Promise<TrustGroupMember | undefined> {
  const t = await thumbprint(cert);
  return group.members.find((m) => m.certificate === t);
}
