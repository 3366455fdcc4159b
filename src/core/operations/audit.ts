/**
 * The operations every audited party offers auditors (`audit-trail`, streamed as one JSON document),
 * and the producer hospital's own: its trail also filtered by patient id and Study Instance UID, trace
 * resolution, the patient pseudonym, break-glass accesses awaiting review and the review itself.
 * Every body declares a purpose of use, which the policy requires to be `HOPERAT` (healthcare
 * operations).
 */
import { TRAIL_FILTER, type PartyTrail } from '../audit/trail.ts';
import { HEX32, jsonStream, message, PATIENT_ID, PURPOSE, UID, type BodyOf } from './contract.ts';

/** A party's trail: its verified chain's records the filter selects (answer: `PartyTrail`). */
export const auditTrail = jsonStream<PartyTrail>()('audit-trail', {
  type: 'object',
  required: ['purpose'],
  additionalProperties: false,
  properties: { purpose: PURPOSE, ...TRAIL_FILTER },
});

/** The producer's trail, which also takes patient ids and UIDs (mapped to what records carry). */
export const producerAuditTrail = jsonStream<PartyTrail>()('audit-trail', {
  type: 'object',
  required: ['purpose'],
  additionalProperties: false,
  properties: {
    purpose: PURPOSE,
    ...TRAIL_FILTER,
    patientIds: { type: 'array', maxItems: 64, items: PATIENT_ID },
    studyUids: { type: 'array', maxItems: 64, items: UID },
  },
});

export type TrailBody = BodyOf<typeof auditTrail>;
export type ProducerTrailBody = BodyOf<typeof producerAuditTrail>;

/** What the producer's log says about a trace: the ticket and its requester. */
export interface TraceResolution {
  readonly trace: string;
  readonly known: boolean;
  readonly ticket?: {
    readonly tid: string;
    readonly requester: string;
    readonly hospital: string;
    readonly device: string;
    readonly issuedAt: string;
    readonly expiresAt: string;
    readonly purpose: string;
    readonly rules: readonly string[];
    readonly obligations: readonly string[];
    readonly breakGlass: boolean;
    readonly review: string;
    readonly reviewer: string | null;
    readonly reviewedAt: string | null;
    readonly patient: string;
    readonly study: string;
    readonly images: number;
  };
}

export const auditTrace = message<TraceResolution>()('audit-trace', {
  type: 'object',
  required: ['purpose', 'trace'],
  additionalProperties: false,
  properties: { purpose: PURPOSE, trace: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
});

export const auditPseudonym = message<{ readonly pseudonym: string }>()('audit-pseudonym', {
  type: 'object',
  required: ['purpose', 'patient'],
  additionalProperties: false,
  properties: { purpose: PURPOSE, patient: PATIENT_ID },
});

export interface PendingReview {
  readonly tid: string;
  readonly requester: string;
  readonly hospital: string;
  readonly device: string;
  readonly issuedAt: string;
  readonly purpose: string;
  /** The clinician's typed justification, for the reviewer (logged whole with its decision). */
  readonly justification: string;
  readonly rules: readonly string[];
  readonly patient: string;
  readonly study: string;
}

export const breakGlassPending = message<{ readonly pending: readonly PendingReview[] }>()(
  'break-glass-pending',
  {
    type: 'object',
    required: ['purpose'],
    additionalProperties: false,
    properties: { purpose: PURPOSE },
  },
);

export const REVIEW_OUTCOMES = ['justified', 'unjustified'] as const;

export interface ReviewAnswer {
  readonly ticket: string;
  readonly review: string;
  readonly reviewer: string;
  readonly reviewedAt: string;
}

export const breakGlassReview = message<ReviewAnswer>()('break-glass-review', {
  type: 'object',
  required: ['purpose', 'ticket', 'outcome'],
  additionalProperties: false,
  properties: {
    purpose: PURPOSE,
    ticket: HEX32,
    outcome: { type: 'string', enum: REVIEW_OUTCOMES },
  },
});
