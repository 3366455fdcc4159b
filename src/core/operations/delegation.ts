/**
 * The producer hospital's `revoke-delegation` operation, as a delegator's device calls it through a
 * session: the delegation (its compact JWS, which the delegator signed) is revoked by its `jti` until
 * it would have expired anyway; the producer's policy then refuses every chain with that hop.
 */
import { message, type BodyOf } from './contract.ts';

export interface RevocationAnswer {
  /** The delegation's statement id (`jti`). */
  readonly revoked: string;
  /** Its expiry (milliseconds since the epoch): the revocation is kept until then. */
  readonly until: number;
}

export const revokeDelegation = message<RevocationAnswer>()('revoke-delegation', {
  type: 'object',
  required: ['delegation'],
  additionalProperties: false,
  properties: { delegation: { type: 'string', minLength: 20, maxLength: 16384 } },
});

export type RevocationRequest = BodyOf<typeof revokeDelegation>;
