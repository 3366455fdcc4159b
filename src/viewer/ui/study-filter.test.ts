// The study list's search box narrows the policy-filtered list by patient ID or name, whatever the
// case, accents or DICOM name separators.
import { describe, expect, it } from 'vitest';
import { filterStudies } from './study-filter.ts';

const list = [
  { patient: { id: 'LIDC-IDRI-0314', name: 'DURAND^BOB' } },
  { patient: { id: 'MR-0042', name: 'Lefèvre^Hélène^Marie' } },
  { patient: { id: 'X-7', name: '' } },
];
const ids = (q: string) => filterStudies(list, q).map((s) => s.patient.id);

describe('filterStudies', () => {
  it('keeps everything for an empty query', () => {
    expect(ids('  ')).toEqual(['LIDC-IDRI-0314', 'MR-0042', 'X-7']);
  });

  it('finds by any part of the patient ID, in any case', () => {
    expect(ids('0314')).toEqual(['LIDC-IDRI-0314']);
    expect(ids('mr-00')).toEqual(['MR-0042']);
  });

  it('finds by the starts of the name’s words, in any order, accents and separators aside', () => {
    expect(ids('durand')).toEqual(['LIDC-IDRI-0314']);
    expect(ids('bob dur')).toEqual(['LIDC-IDRI-0314']);
    expect(ids('helene lef')).toEqual(['MR-0042']);
    expect(ids('Hélène')).toEqual(['MR-0042']);
    expect(ids('rand')).toEqual([]);
    expect(ids('nobody')).toEqual([]);
  });
});
