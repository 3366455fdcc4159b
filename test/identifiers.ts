/** What identifies a patient in a DICOM header, and what of it a confidentiality scan looks for. */
import type { DataSet } from '../src/core/dicom/dataset.ts';

/** Identifying attributes (PS3.15 E.1-1) whose values must not survive in clear. */
export const IDENTIFYING = [
  0x00100010, // Patient's Name
  0x00100020, // Patient ID
  0x00100030, // Patient's Birth Date
  0x00101000, // Other Patient IDs
  0x00101010, // Patient's Age
  0x00080050, // Accession Number
  0x00080080, // Institution Name
  0x00080081, // Institution Address
  0x00080090, // Referring Physician's Name
  0x00081010, // Station Name
  0x00081030, // Study Description
  0x0008103e, // Series Description
  0x00081070, // Operators' Name
  0x00181000, // Device Serial Number
  0x00200010, // Study ID
  0x0020000d, // Study Instance UID
  0x0020000e, // Series Instance UID
  0x00080018, // SOP Instance UID
  0x00200052, // Frame of Reference UID
];

/**
 * The identifying values of a header worth searching for: values too plain to identify anyone
 * ("00000", "Y") also occur in the dummies the confidentiality profile writes, so they are left out.
 */
export function identifyingValues(ds: DataSet): { tag: number; value: string }[] {
  const out: { tag: number; value: string }[] = [];
  for (const tag of IDENTIFYING) {
    const v = ds.text(tag)?.trim();
    if (!v || v.replace(/[^A-Za-z0-9]/g, '').length < 4 || new Set(v).size < 3) continue;
    out.push({ tag, value: v });
  }
  return out;
}
