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

/** Most image ids a redemption request may name to be sent first. */
export const MAX_FIRST = 1024;

export const redeem = message<Redemption>()('redeem', {
  type: 'object',
  required: ['ticket'],
  additionalProperties: false,
  properties: {
    ticket: { type: 'string', minLength: 100, maxLength: 200_000 },
    /**
     * Images of the ticket the device wants first (the slice on screen), in that order; the others
     * follow in the ticket's order. Ids the ticket does not name are ignored.
     */
    first: {
      type: 'array',
      maxItems: MAX_FIRST,
      items: { type: 'string', minLength: 1, maxLength: 128 },
    },
  },
});

/** Most instances one redemption may hold (a resumed retrieval starts at most here). */
export const MAX_REDEMPTION_IMAGES = 100_000;

export const retrieve = stream('retrieve', {
  type: 'object',
  required: ['redemption'],
  additionalProperties: false,
  properties: {
    redemption: HEX32,
    /**
     * Resume a cut retrieval: the position, in the redemption's stream order, of the first instance
     * to send (the number already received). The redemption's own instances only, while it is valid.
     */
    from: { type: 'integer', minimum: 0, maximum: MAX_REDEMPTION_IMAGES },
  },
});
