/**
 * The producer hospital's consultation operations, as clinicians' devices call them through a
 * session: `search` (the studies this clinician could consult under the policy) and `consult` (the
 * blind ticket for one study: the cloud's part, the device's key part, the trace it asks for).
 */
import type { Ticket } from '../ticket/ticket.ts';
import { message, PATIENT_ID, PURPOSE, UID, type BodyOf } from './contract.ts';

/** Signed statements the clinician presents: role assignments, delegation chains (JWS each). */
const STATEMENTS = {
  roleAssignments: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 8192 } },
  delegations: {
    type: 'array',
    maxItems: 4,
    items: { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 8192 } },
  },
} as const;

export interface StudySummary {
  readonly uid: string;
  readonly description: string;
  readonly date: string;
  readonly modality: string;
}

export interface SeriesSummary {
  readonly uid: string;
  readonly number: number;
  readonly description: string;
  readonly modality: string;
}

export interface SearchAnswer {
  readonly studies: readonly {
    readonly patient: { readonly id: string; readonly name: string; readonly birthDate: string };
    readonly study: StudySummary;
    readonly series: readonly (SeriesSummary & { readonly instances: number })[];
  }[];
}

export const search = message<SearchAnswer>()('search', {
  type: 'object',
  required: ['purpose'],
  additionalProperties: false,
  properties: { purpose: PURPOSE, ...STATEMENTS },
});

export interface ConsultAnswer {
  readonly ticket: Ticket;
  /** The trace (hex) this ticket asks the cloud to insert: the viewer checks it is there. */
  readonly trace: string;
  readonly study: StudySummary;
  readonly series: readonly (SeriesSummary & {
    readonly instances: readonly {
      readonly id: string;
      readonly number: number;
      readonly position: number | null;
    }[];
  })[];
  readonly decision: { readonly rules: readonly string[]; readonly obligations: readonly string[] };
}

export const consult = message<ConsultAnswer>()('consult', {
  type: 'object',
  required: ['patient', 'purpose'],
  additionalProperties: false,
  properties: {
    patient: PATIENT_ID,
    study: UID,
    purpose: PURPOSE,
    emergencyJustification: { type: 'string', maxLength: 2000 },
    ...STATEMENTS,
  },
});

export type SearchRequest = BodyOf<typeof search>;
export type ConsultRequest = BodyOf<typeof consult>;
