/**
 * The producer hospital's patient pseudonym: what its audit records, ticket records and auditors'
 * look-ups name a patient by — SHA-256 of its pseudonym secret, a label and the patient id, 32 hex
 * digits. One derivation for every use: a second copy that drifted would silently break auditors'
 * look-ups by patient.
 */
import { toHex, utf8 } from '../bytes.ts';
import { sha256 } from './hash.ts';

export const patientPseudonym = (key: Uint8Array, patient: string): string =>
  toHex(sha256(key, utf8(`patient\0${patient}`))).slice(0, 32);
