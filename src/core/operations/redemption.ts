/**
 * The cloud's operations for clinicians' devices: `redeem` a ticket's cloud part (the cloud inserts
 * the traces and records the redemption) and `retrieve` the traced instances of a redemption, streamed
 * as multipart/related.
 */
import { HEX32, message, stream } from './contract.ts';

export interface Redemption {
  readonly redemption: string;
  readonly ticket: string;
  readonly images: readonly string[];
  readonly expiresAt: number;
}

export const redeem = message<Redemption>()('redeem', {
  type: 'object',
  required: ['ticket'],
  additionalProperties: false,
  properties: { ticket: { type: 'string', minLength: 100, maxLength: 200_000 } },
});

export const retrieve = stream('retrieve', {
  type: 'object',
  required: ['redemption'],
  additionalProperties: false,
  properties: { redemption: HEX32 },
});
