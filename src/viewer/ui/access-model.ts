/**
 * What kind of access the open study rests on, for the marker the viewer keeps on screen while it is
 * open: an emergency (break-the-glass) access is marked, with its justification and whether the
 * producer's policy put it under an auditor's review. Pure: tested without a browser.
 */
import type { ConsultAnswer } from '../../core/client/federation.ts';
import { HL7_PURPOSES_OF_USE } from '../../core/policy/purposes.ts';

/** The PurposeOfUse codes of an emergency access (HL7 v3: emergency treatment, break the glass). */
const EMERGENCY_CODES = new Set(['ETREAT', 'BTG']);

/** What the clinician asked for, as the request dialog sent it. */
export interface Asked {
  readonly purpose: string;
  readonly justification?: string;
}

export interface OpenedAccess {
  readonly purpose: string;
  readonly emergency: boolean;
  /** The producer's policy attached the break-glass review obligation to the ticket. */
  readonly reviewed: boolean;
  readonly justification?: string;
  /** One line for the marker. */
  readonly text: string;
}

export function openedAccess(answer: ConsultAnswer, asked: Asked): OpenedAccess {
  const reviewed = answer.decision.obligations.some((o) => o.startsWith('break-glass-review'));
  const emergency = reviewed || EMERGENCY_CODES.has(asked.purpose);
  const name = HL7_PURPOSES_OF_USE[asked.purpose] ?? asked.purpose;
  const text = emergency
    ? `Emergency access (break the glass) — ${
        reviewed
          ? 'an auditor reviews this access and its justification'
          : 'logged with its justification'
      }`
    : `Access for ${name}`;
  return {
    purpose: asked.purpose,
    emergency,
    reviewed,
    ...(asked.justification ? { justification: asked.justification } : {}),
    text,
  };
}
