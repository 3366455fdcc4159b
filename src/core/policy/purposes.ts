/**
 * Purposes of use: the HL7 v3 PurposeOfUse codes (code system v3-ActReason,
 * http://terminology.hl7.org/CodeSystem/v3-ActReason) a policy may declare. A policy file declares
 * the closed vocabulary it uses — a subset of these codes, each with what the platform needs to know
 * about it — and a request whose purpose is not in its domain's vocabulary is denied.
 */

/** The PurposeOfUse codes the platform knows, with their HL7 display names. */
export const HL7_PURPOSES_OF_USE: Readonly<Record<string, string>> = {
  TREAT: 'treatment',
  ETREAT: 'emergency treatment',
  BTG: 'break the glass',
  COC: 'coordination of care',
  CAREMGT: 'care management',
  CLINTRL: 'clinical trial',
  POPHLTH: 'population health',
  HRESCH: 'healthcare research',
  CLINTRCH: 'clinical trial research',
  HOPERAT: 'healthcare operations',
  HCOMPL: 'health compliance',
  HQUALIMP: 'health quality improvement',
  HSYSADMIN: 'health system administration',
  PATSFTY: 'patient safety',
  RECORDMGT: 'records management',
  TRAIN: 'training',
  HLEGAL: 'legal',
  FRAUD: 'fraud',
  HPAYMT: 'healthcare payment',
  COVERAGE: 'coverage under policy or program',
  HMARKT: 'healthcare marketing',
  PATRQT: 'patient requested',
  PUBHLTH: 'public health',
};

/** How a policy declares one purpose of its vocabulary. */
export interface PurposeDefinition {
  /** The HL7 display name, or the hospital's wording of it. */
  readonly display: string;
  /**
   * Whether an access for this purpose may disclose the patient's identity (false: de-identified
   * purposes such as research, whose tickets carry the pixel key K_p, never the image key K_i).
   */
  readonly identity: boolean;
  /** Break-glass purpose: a typed justification may be given only with such a purpose. */
  readonly emergency?: boolean;
}

/** The shape of a PurposeOfUse code, for edge validation before any vocabulary is consulted. */
export const PURPOSE_CODE_PATTERN = '^[A-Z][A-Z0-9]{1,15}$';
export const PURPOSE_CODE = new RegExp(PURPOSE_CODE_PATTERN);

export const isHl7PurposeOfUse = (code: string): boolean =>
  Object.prototype.hasOwnProperty.call(HL7_PURPOSES_OF_USE, code);

/**
 * The sentence a refusal ends with, naming the purposes of use the same request would be allowed
 * for (so that the clinician knows what to ask for instead), and its reading on the clinician's side.
 * Errors cross the session as a message only, so the list travels as this fixed sentence.
 */
const ALLOWED_PREFIX = 'purposes of use the policy allows you here: ';
const NONE_ALLOWED = 'no purpose of use the policy knows allows you this';

export function allowedPurposesSentence(codes: readonly string[]): string {
  return codes.length ? `${ALLOWED_PREFIX}${codes.join(', ')}` : NONE_ALLOWED;
}

/** The codes named by `allowedPurposesSentence` in a message; undefined when it names none. */
export function allowedPurposesIn(message: string): string[] | undefined {
  if (message.includes(NONE_ALLOWED)) return [];
  const i = message.lastIndexOf(ALLOWED_PREFIX);
  if (i < 0) return undefined;
  const m = new RegExp(
    `^(${PURPOSE_CODE_PATTERN.slice(1, -1)}(?:, ${PURPOSE_CODE_PATTERN.slice(1, -1)})*)`,
  ).exec(message.slice(i + ALLOWED_PREFIX.length));
  return m ? m[1]!.split(', ') : undefined;
}
