// The PS3.15 A.5.1 schema the project ships, and libxml2 (xmllint-wasm) validating a DICOM audit
// message against it: what every test that checks an exported or forwarded message uses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateXML, type XMLValidationResult } from 'xmllint-wasm';
import { REPO_ROOT } from './samples.ts';

export const AUDIT_RNG = readFileSync(join(REPO_ROOT, 'schemas/dicom-audit-message.rng'), 'utf8');

/**
 * Validates AuditMessage documents, all in one run of xmllint (no errors: every one is valid; an
 * error names its document as `message-<index>.xml`).
 */
export const validateAuditMessages = (xml: readonly string[]): Promise<XMLValidationResult> =>
  validateXML({
    xml: xml.map((contents, i) => ({ fileName: `message-${i}.xml`, contents })),
    schema: [{ fileName: 'dicom-audit-message.rng', contents: AUDIT_RNG }],
    extension: 'relaxng',
  });
