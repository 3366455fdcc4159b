/**
 * Signed attribute statements (compact JWS, ES256): role assignments, by which a hospital acting as
 * attribute authority gives a clinician a functional role (attending physician of a patient,
 * radiologist reading a study) for a period; delegations, by which a clinician passes a privilege they
 * hold to a colleague of the same organisation for a bounded time and scope, possibly along a chain of
 * bounded depth; and directory entries, by which a hospital states every structural role a person
 * holds in its directory. Identities are qualified by organisation: a clinician is an id *at* a
 * trust-group member. Verifying a statement checks its signature, its type, its period and who it is
 * about; every refusal is a reason.
 */
import { CompactSign, compactVerify, decodeProtectedHeader, type JWSHeaderParameters } from 'jose';
import { fromUtf8, randomBytes, toHex, utf8 } from '../bytes.ts';
import type { SigningKey } from '../crypto/keys.ts';
import { ZtvError } from '../errors.ts';

export const ROLE_ASSIGNMENT_TYP = 'ztv-role-assignment+jws';
export const DELEGATION_TYP = 'ztv-delegation+jws';
export const DIRECTORY_TYP = 'ztv-directory+jws';

export interface RoleAssignment {
  /** The hospital (trust-group member id) acting as attribute authority. */
  readonly iss: string;
  /** The clinician given the role … */
  readonly sub: string;
  /** … at this organisation (default: the issuer; an authority the policy names says it). */
  readonly sub_org?: string;
  /** The functional role: attending, reading-radiologist, … */
  readonly role: string;
  /** Scope: the patient (pseudonym) or study the role is about. */
  readonly patient?: string;
  readonly study?: string;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
}

export interface Delegation {
  /** The delegating clinician, who must hold `role` (natively or by an earlier hop) … */
  readonly iss: string;
  /** … at this organisation (the hospital of the device certificate that signs). */
  readonly iss_org: string;
  /** The clinician receiving the privilege, at their organisation (the delegator's own). */
  readonly sub: string;
  readonly sub_org: string;
  readonly role: string;
  readonly activity: string;
  /** What was delegated: the patient or study (required for a functional role). */
  readonly patient?: string;
  readonly study?: string;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
}

export interface DirectoryEntry {
  /** The hospital whose directory this is. */
  readonly iss: string;
  /** The person (clinician id at that hospital). */
  readonly sub: string;
  /** Whether the account is active. */
  readonly active: boolean;
  /** Every structural role the person holds: the account's, and those of their devices in force. */
  readonly roles: readonly string[];
  /**
   * Whether the person has a live sign-in at the hospital (unexpired, not signed out): what a
   * consultation needs. Absent from a directory that does not say.
   */
  readonly signedIn?: boolean;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
}

export interface Signer {
  readonly key: SigningKey;
  /** Key identifier in the JWS header (the issuer's key id or device thumbprint). */
  readonly kid: string;
  /** The signer's certificate chain (base64 DER, leaf first), so verifiers can validate it. */
  readonly x5c?: readonly string[];
}

async function sign(payload: object, typ: string, s: Signer): Promise<string> {
  return new CompactSign(utf8(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', typ, kid: s.kid, ...(s.x5c ? { x5c: [...s.x5c] } : {}) })
    .sign(s.key.cryptoKey);
}

const jti = (): string => toHex(randomBytes(16));

export function issueRoleAssignment(s: Signer, a: Omit<RoleAssignment, 'jti'>): Promise<string> {
  return sign({ ...a, jti: jti() }, ROLE_ASSIGNMENT_TYP, s);
}

export function issueDelegation(s: Signer, d: Omit<Delegation, 'jti'>): Promise<string> {
  return sign({ ...d, jti: jti() }, DELEGATION_TYP, s);
}

export function issueDirectoryEntry(s: Signer, e: Omit<DirectoryEntry, 'jti'>): Promise<string> {
  return sign({ ...e, jti: jti() }, DIRECTORY_TYP, s);
}

/** A signer as a verifier resolves it. */
export interface ResolvedSigner {
  /** The signer's identity: a clinician id, or a trust-group member id for an organisation. */
  readonly id: string;
  readonly key: CryptoKey;
  /** Roles the signer holds by certificate (delegators), when the resolver knows them. */
  readonly roles?: readonly string[];
  /** The trust-group member the signer belongs to (a clinician's hospital), when known. */
  readonly organization?: string;
  /** The organisation's role in the federation (producer, consumer, cloud, authority), when known. */
  readonly organizationRole?: string;
}

/** Who a key id belongs to: the signer's identity and public key. */
export type KeyResolver = (
  kid: string,
  header: JWSHeaderParameters,
) => Promise<ResolvedSigner | undefined>;

export class StatementError extends ZtvError {
  constructor(message: string) {
    super('bad-input', message);
    this.name = 'StatementError';
  }
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

async function verify<T extends { iss: string; nbf: number; exp: number; jti: string }>(
  jws: string,
  typ: string,
  what: string,
  resolve: KeyResolver,
  now: number,
): Promise<{ claims: T; signer: ResolvedSigner }> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    throw new StatementError(`the ${what} is not a JWS`);
  }
  if (header.typ !== typ || header.alg !== 'ES256' || typeof header.kid !== 'string')
    throw new StatementError(`the ${what} is not a ${typ} signed with ES256`);
  const signer = await resolve(header.kid as string, header);
  if (!signer) throw new StatementError(`the ${what} is signed by an unknown key`);
  let claims: T;
  try {
    claims = JSON.parse(
      fromUtf8((await compactVerify(jws, signer.key, { algorithms: ['ES256'] })).payload),
    ) as T;
  } catch {
    throw new StatementError(`the ${what}'s signature does not verify: forged or altered`);
  }
  if (
    !claims ||
    typeof claims !== 'object' ||
    !isString(claims.iss) ||
    !isString(claims.jti) ||
    typeof claims.nbf !== 'number' ||
    typeof claims.exp !== 'number'
  )
    throw new StatementError(`the ${what} is malformed`);
  if (claims.iss !== signer.id)
    throw new StatementError(
      `the ${what} names ${claims.iss} as issuer but is signed by ${signer.id}`,
    );
  if (!(claims.nbf <= now)) throw new StatementError(`the ${what} is not valid yet`);
  if (!(claims.exp > now)) throw new StatementError(`the ${what} has expired`);
  return { claims, signer };
}

/** A verified role assignment, with the federation role of the organisation that signed it. */
export interface VerifiedAssignment extends RoleAssignment {
  /** The subject's organisation: `sub_org`, or the issuer. */
  readonly subOrg: string;
  readonly issuerRole?: string;
}

export async function verifyRoleAssignment(
  jws: string,
  resolveIssuer: KeyResolver,
  now: number,
): Promise<VerifiedAssignment> {
  const { claims, signer } = await verify<RoleAssignment>(
    jws,
    ROLE_ASSIGNMENT_TYP,
    'role assignment',
    resolveIssuer,
    now,
  );
  if (!isString(claims.sub) || !isString(claims.role))
    throw new StatementError('the role assignment is malformed');
  if (claims.sub_org !== undefined && !isString(claims.sub_org))
    throw new StatementError('the role assignment is malformed');
  return {
    ...claims,
    subOrg: claims.sub_org ?? claims.iss,
    ...(signer.organizationRole ? { issuerRole: signer.organizationRole } : {}),
  };
}

/**
 * Verifies a directory entry about `who` from `who.organization`'s directory: signed by that
 * organisation, about that person, in its period.
 */
export async function verifyDirectoryEntry(
  jws: string,
  resolveIssuer: KeyResolver,
  who: { readonly id: string; readonly organization: string },
  now: number,
): Promise<DirectoryEntry> {
  const { claims } = await verify<DirectoryEntry>(
    jws,
    DIRECTORY_TYP,
    'directory entry',
    resolveIssuer,
    now,
  );
  if (
    typeof claims.active !== 'boolean' ||
    (claims.signedIn !== undefined && typeof claims.signedIn !== 'boolean') ||
    !Array.isArray(claims.roles) ||
    !claims.roles.every(isString)
  )
    throw new StatementError('the directory entry is malformed');
  if (claims.iss !== who.organization || claims.sub !== who.id)
    throw new StatementError(
      `the directory entry is about ${claims.sub} at ${claims.iss}, not ${who.id} at ${who.organization}`,
    );
  return claims;
}

/** A clinician qualified by organisation, as decision records name them. */
export const qualified = (id: string, organization: string): string => `${id}@${organization}`;

export interface DelegationGrant {
  readonly role: string;
  readonly activity: string;
  readonly patient?: string;
  readonly study?: string;
  /** Clinicians (id@organisation) from the original holder to the requester. */
  readonly path: readonly string[];
  /** The delegator who held the role, and their organisation. */
  readonly origin: { readonly id: string; readonly organization: string };
  /** Statement ids of every hop, for revocation. */
  readonly jtis: readonly string[];
}

/**
 * Verifies a delegation chain ending at `requester`: every hop signed by its delegator's device (the
 * delegator's organisation is the one of that device), unexpired, for the same privilege and scope,
 * each delegator the previous delegatee, nobody delegating to themselves, every hop inside the
 * requester's organisation, the first delegator holding the role (`holds`), and no longer than
 * `maxDepth`. What the policy says about the role (whether it may be delegated, how deep, to whom,
 * about what) is the caller's to check on the grant.
 */
export async function verifyDelegationChain(
  chain: readonly string[],
  requester: { readonly id: string; readonly organization: string },
  resolveClinician: KeyResolver,
  holds: (
    clinician: { readonly id: string; readonly organization: string },
    role: string,
    signerRoles: readonly string[] | undefined,
  ) => Promise<boolean>,
  maxDepth: number,
  now: number,
): Promise<DelegationGrant> {
  if (chain.length === 0) throw new StatementError('the delegation chain is empty');
  if (chain.length > maxDepth)
    throw new StatementError(
      `the delegation chain has ${chain.length} hops; at most ${maxDepth} are allowed`,
    );
  const hops: Delegation[] = [];
  let firstRoles: readonly string[] | undefined;
  for (const [i, jws] of chain.entries()) {
    const what = `delegation hop ${i + 1}`;
    const { claims: d, signer } = await verify<Delegation>(
      jws,
      DELEGATION_TYP,
      what,
      resolveClinician,
      now,
    );
    if (
      !isString(d.sub) ||
      !isString(d.role) ||
      !isString(d.activity) ||
      !isString(d.iss_org) ||
      !isString(d.sub_org)
    )
      throw new StatementError(
        `${what} is malformed: delegator and delegatee are named with their organisation (iss_org, sub_org)`,
      );
    if (!signer.organization || d.iss_org !== signer.organization)
      throw new StatementError(
        `${what} names ${d.iss_org} as the delegator's organisation but is signed by a device of ${signer.organization ?? 'no known organisation'}`,
      );
    if (d.iss === d.sub && d.iss_org === d.sub_org)
      throw new StatementError(`${what} delegates from ${d.iss} to themselves`);
    if (d.iss_org !== requester.organization || d.sub_org !== requester.organization)
      throw new StatementError(
        `${what} crosses organisations (${qualified(d.iss, d.iss_org)} to ${qualified(d.sub, d.sub_org)}): delegation stays within the requester's organisation`,
      );
    const prev = hops[i - 1];
    if (prev && (d.iss !== prev.sub || d.iss_org !== prev.sub_org))
      throw new StatementError(
        `${what} is issued by ${d.iss}, who was not delegated to (broken chain)`,
      );
    if (
      prev &&
      (d.role !== prev.role ||
        d.activity !== prev.activity ||
        d.patient !== prev.patient ||
        d.study !== prev.study)
    )
      throw new StatementError(`${what} passes on a privilege its delegator did not receive`);
    if (i === 0) firstRoles = signer.roles;
    hops.push(d);
  }
  const first = hops[0]!;
  const origin = { id: first.iss, organization: first.iss_org };
  if (!(await holds(origin, first.role, firstRoles)))
    throw new StatementError(`${first.iss} does not hold the role ${first.role} to delegate`);
  const last = hops[hops.length - 1]!;
  if (last.sub !== requester.id || last.sub_org !== requester.organization)
    throw new StatementError(`the delegation chain ends at ${last.sub}, not at the requester`);
  return {
    role: first.role,
    activity: first.activity,
    ...(first.patient !== undefined ? { patient: first.patient } : {}),
    ...(first.study !== undefined ? { study: first.study } : {}),
    path: [qualified(first.iss, first.iss_org), ...hops.map((h) => qualified(h.sub, h.sub_org))],
    origin,
    jtis: hops.map((h) => h.jti),
  };
}
