/**
 * A refused request for access, as the request dialog words it: which attempt and which purpose were
 * refused, the policy's reason, and the purposes this clinician may ask for instead (the producer's
 * refusal names them: core/policy/purposes.ts). Pure: tested without a browser.
 */
import { allowedPurposesIn, HL7_PURPOSES_OF_USE } from '../../core/policy/purposes.ts';

/** A purpose the dialog offers, by its HL7 PurposeOfUse code. */
export interface OfferedPurpose {
  readonly id: string;
  readonly code: string;
  readonly label: string;
}

export interface Refusal {
  /** "Request 2 (Research) refused" — each attempt reads differently from the one before. */
  readonly heading: string;
  /** The policy's reason, without the list of allowed purposes. */
  readonly reason: string;
  /** The purposes the policy would allow for this request, that the dialog offers; [] if none. */
  readonly alternatives: readonly OfferedPurpose[];
  /** Allowed purposes this dialog cannot ask for (named by their HL7 display name). */
  readonly elsewhere: readonly string[];
  /** One sentence on what may be asked for instead; undefined when the refusal names nothing. */
  readonly advice?: string;
}

export function describeRefusal(
  message: string,
  asked: OfferedPurpose,
  attempt: number,
  offered: readonly OfferedPurpose[],
): Refusal {
  const codes = allowedPurposesIn(message);
  const reason =
    message
      .replace(
        /;?\s*(purposes of use the policy allows you here: .*|no purpose of use the policy knows allows you this.*)$/,
        '',
      )
      .replace(/[.\s]+$/, '') + '.';
  const alternatives = (codes ?? [])
    .map((c) => offered.find((p) => p.code === c))
    .filter((p): p is OfferedPurpose => !!p);
  const elsewhere = (codes ?? [])
    .filter((c) => !offered.some((p) => p.code === c))
    .map((c) => HL7_PURPOSES_OF_USE[c] ?? c);
  const others = alternatives.filter((p) => p.code !== asked.code);
  const names = [...alternatives.map((p) => p.label), ...elsewhere];
  const advice =
    codes === undefined
      ? undefined
      : names.length === 0
        ? 'The policy lets you consult this study for no purpose of use.'
        : others.length === 0 && alternatives.length > 0
          ? `The policy would allow ${asked.label.toLowerCase()} with a justification it accepts.`
          : `You may ask for: ${names.join(', ')}.`;
  return {
    heading: `Request ${attempt} (${asked.label}) refused`,
    reason,
    alternatives,
    elsewhere,
    ...(advice ? { advice } : {}),
  };
}
