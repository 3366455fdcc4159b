/**
 * Signed attribute statements (compact JWS, ES256): role assignments, by which a hospital acting as
 * attribute authority gives a clinician a functional role (attending physician of a patient,
 * radiologist reading a study) for a period; and delegations, by which a clinician passes a privilege
 * they hold to another for a bounded time, possibly along a chain of bounded depth. Verifying a
 * statement checks its signature, its type, its period and who it is about; every refusal is a reason.
 */
import { CompactSign, compactVerify, decodeProtectedHeader, type JWSHeaderParameters } from 'jose';
import { fromUtf8, randomBytes, toHex, utf8 } from '../bytes.ts';
import type { SigningKey } from '../crypto/keys.ts';
import { ZtvError } from '../errors.ts';

export const ROLE_ASSIGNMENT_TYP = 'ztv-role-assignment+jws';
export const DELEGATION_TYP = 'ztv-delegation+jws';

export interface RoleAssignment {
  /** The hospital (trust-group member id) acting as attribute authority. */
  readonly iss: string;
  /** The clinician given the role. */
  readonly sub: string;
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
  /** The delegating clinician, who must hold `role` (natively or by an earlier hop). */
  readonly iss: string;
  /** The clinician receiving the privilege. */
  readonly sub: string;
  readonly role: string;
  readonly activity: string;
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

export function issueRoleAssignment(s: Signer, a: Omit<RoleAssignment, 'jti'>): Promise<string> {
  return sign({ ...a, jti: toHex(randomBytes(16)) }, ROLE_ASSIGNMENT_TYP, s);
}

export function issueDelegation(s: Signer, d: Omit<Delegation, 'jti'>): Promise<string> {
  return sign({ ...d, jti: toHex(randomBytes(16)) }, DELEGATION_TYP, s);
}

/** Who a key id belongs to: the signer's identity and public key. */
export type KeyResolver = (
  kid: string,
  header: JWSHeaderParameters,
) => Promise<
  | {
      readonly id: string;
      readonly key: CryptoKey;
      /** Roles the signer holds by certificate (delegators), when the resolver knows them. */
      readonly roles?: readonly string[];
    }
  | undefined
>;

export class StatementError extends ZtvError {
  constructor(message: string) {
    super('bad-input', message);
    this.name = 'StatementError';
  }
}

async function verify<T extends { iss: string; nbf: number; exp: number }>(
  jws: string,
  typ: string,
  what: string,
  resolve: KeyResolver,
  now: number,
): Promise<{ claims: T; roles?: readonly string[] }> {
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
  if (claims.iss !== signer.id)
    throw new StatementError(
      `the ${what} names ${claims.iss} as issuer but is signed by ${signer.id}`,
    );
  if (!(claims.nbf <= now)) throw new StatementError(`the ${what} is not valid yet`);
  if (!(claims.exp > now)) throw new StatementError(`the ${what} has expired`);
  return { claims, ...(signer.roles ? { roles: signer.roles } : {}) };
}

export async function verifyRoleAssignment(
  jws: string,
  resolveIssuer: KeyResolver,
  now: number,
): Promise<RoleAssignment> {
  return (
    await verify<RoleAssignment>(jws, ROLE_ASSIGNMENT_TYP, 'role assignment', resolveIssuer, now)
  ).claims;
}

export interface DelegationGrant {
  readonly role: string;
  readonly activity: string;
  /** Clinicians from the original holder to the requester. */
  readonly path: readonly string[];
}

/**
 * Verifies a delegation chain ending at `requester`: every hop signed by its delegator, unexpired, for
 * the same role and activity, each delegator the previous delegatee, the first delegator holding the
 * role natively, and no longer than `maxDepth`.
 */
export async function verifyDelegationChain(
  chain: readonly string[],
  requester: string,
  resolveClinician: KeyResolver,
  holdsNatively: (clinician: string, role: string) => Promise<boolean>,
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
    const { claims: d, roles } = await verify<Delegation>(
      jws,
      DELEGATION_TYP,
      `delegation hop ${i + 1}`,
      resolveClinician,
      now,
    );
    const prev = hops[i - 1];
    if (prev && d.iss !== prev.sub)
      throw new StatementError(
        `delegation hop ${i + 1} is issued by ${d.iss}, who was not delegated to (broken chain)`,
      );
    if (prev && (d.role !== prev.role || d.activity !== prev.activity))
      throw new StatementError(
        `delegation hop ${i + 1} passes on a privilege its delegator did not receive`,
      );
    if (i === 0) firstRoles = roles;
    hops.push(d);
  }
  const first = hops[0]!;
  const holds = firstRoles
    ? firstRoles.includes(first.role)
    : await holdsNatively(first.iss, first.role);
  if (!holds)
    throw new StatementError(`${first.iss} does not hold the role ${first.role} to delegate`);
  const last = hops[hops.length - 1]!;
  if (last.sub !== requester)
    throw new StatementError(`the delegation chain ends at ${last.sub}, not at the requester`);
  return {
    role: first.role,
    activity: first.activity,
    path: [first.iss, ...hops.map((h) => h.sub)],
  };
}
