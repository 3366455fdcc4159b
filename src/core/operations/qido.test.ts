// QIDO-RS queries as the producer parses and matches them: paths and keys (by keyword or tag), what
// is refused at the boundary, date ranges, wildcards, fuzzy person names (the study search box's
// "patient ID or name": any case, accents and DICOM separators aside), the DICOM JSON of the matches
// with offset and limit.
import { describe, expect, it } from 'vitest';
import type { SearchAnswer } from './consultation.ts';
import { jsonText, matches, parseQido, qidoMatches, searchBoxQueries } from './qido.ts';

const study = (id: string, name: string, uid: string, date: string, modality: string) => ({
  patient: { id, name, birthDate: '19600101' },
  study: { uid, description: `${modality} study`, date, modality },
  series: [
    { uid: `${uid}.1`, number: 1, description: 'axial', modality, instances: 3 },
    { uid: `${uid}.2`, number: 2, description: 'scout', modality, instances: 1 },
  ],
});
const LIST: SearchAnswer['studies'] = [
  study('LIDC-IDRI-0314', 'DURAND^BOB', '1.2.3', '20000101', 'CT'),
  study('MR-0042', 'Lefèvre^Hélène^Marie', '1.2.4', '20101231', 'MR'),
  study('X-7', '', '1.2.5', '', 'CT'),
];
const found = (resource: string) =>
  qidoMatches(LIST, parseQido(resource)).map((m) => jsonText(m, 'PatientID'));
/** What the search box finds for a typed text: the union of its queries. */
const box = (text: string) => [...new Set(searchBoxQueries(text).flatMap((r) => found(r)))];

describe('QIDO-RS queries', () => {
  it('parses the study and series resources, keys by keyword or tag, limit and offset', () => {
    expect(
      parseQido('/studies?PatientID=A&00080020=20000101&limit=5&offset=2&includefield=all'),
    ).toEqual({
      level: 'studies',
      match: { PatientID: 'A', StudyDate: '20000101' },
      fuzzy: false,
      limit: 5,
      offset: 2,
    });
    expect(parseQido('/studies/1.2.3/series?Modality=CT')).toMatchObject({
      level: 'series',
      study: '1.2.3',
      match: { Modality: 'CT' },
    });
    expect(parseQido('/series').level).toBe('series');
  });

  it('refuses other resources, unknown or repeated keys, long values and malformed dates', () => {
    expect(() => parseQido('/instances')).toThrow(/QIDO-RS here is/);
    expect(() => parseQido('/studies/not-a-uid/series')).toThrow(/QIDO-RS here is/);
    expect(() => parseQido('/studies?Modality=CT')).toThrow(
      /Modality: not a matching key of studies/,
    );
    expect(() => parseQido('/studies?PatientID=a&PatientID=b')).toThrow(/given twice/);
    expect(() => parseQido(`/studies?PatientID=${'x'.repeat(65)}`)).toThrow(/at most 64/);
    expect(() => parseQido('/studies?StudyDate=2000')).toThrow(/YYYYMMDD/);
    expect(() => parseQido('/studies?limit=-1')).toThrow(/limit/);
  });

  it('matches dates and ranges, UID lists, wildcards', () => {
    expect(found('/studies?StudyDate=20000101')).toEqual(['LIDC-IDRI-0314']);
    expect(found('/studies?StudyDate=20050101-')).toEqual(['MR-0042']);
    expect(found('/studies?StudyDate=-20050101')).toEqual(['LIDC-IDRI-0314']);
    expect(found('/studies?StudyInstanceUID=1.2.4,1.2.5')).toEqual(['MR-0042', 'X-7']);
    expect(found('/studies?PatientID=*-0*')).toEqual(['LIDC-IDRI-0314', 'MR-0042']);
    expect(found('/studies?PatientID=X-?')).toEqual(['X-7']);
    expect(found('/studies?ModalitiesInStudy=MR')).toEqual(['MR-0042']);
    expect(found('/studies?PatientName=DURAND^BOB')).toEqual(['LIDC-IDRI-0314']);
    expect(matches('PatientName', 'dur*', 'DURAND^BOB', false)).toBe(true);
  });

  it('answers DICOM JSON at study and series level, with offset and limit', () => {
    const [s] = qidoMatches(LIST, parseQido('/studies?PatientID=MR-0042'));
    expect(s).toMatchObject({
      '0020000D': { vr: 'UI', Value: ['1.2.4'] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Lefèvre^Hélène^Marie' }] },
      '00080061': { vr: 'CS', Value: ['MR'] },
      '00201206': { vr: 'IS', Value: [2] },
      '00201208': { vr: 'IS', Value: [4] },
    });
    expect(qidoMatches(LIST, parseQido('/studies?PatientID=X-7'))[0]!['00080020']).toEqual({
      vr: 'DA',
    });
    const series = qidoMatches(LIST, parseQido('/studies/1.2.3/series?SeriesNumber=2'));
    expect(series).toEqual([
      {
        '0020000D': { vr: 'UI', Value: ['1.2.3'] },
        '00080060': { vr: 'CS', Value: ['CT'] },
        '0008103E': { vr: 'LO', Value: ['scout'] },
        '0020000E': { vr: 'UI', Value: ['1.2.3.2'] },
        '00200011': { vr: 'IS', Value: [2] },
        '00201209': { vr: 'IS', Value: [1] },
      },
    ]);
    expect(qidoMatches(LIST, parseQido('/series?Modality=CT'))).toHaveLength(4);
    expect(
      qidoMatches(LIST, parseQido('/series?Modality=CT&offset=1&limit=2')).map((m) =>
        jsonText(m, 'SeriesInstanceUID'),
      ),
    ).toEqual(['1.2.3.2', '1.2.5.1']);
  });

  it('the search box finds by any part of the patient ID, in any case', () => {
    expect(box('  ')).toEqual([]);
    expect(box('0314')).toEqual(['LIDC-IDRI-0314']);
    expect(box('mr-00')).toEqual(['MR-0042']);
  });

  it('the search box finds by the starts of the name’s words, in any order, accents and separators aside', () => {
    expect(box('durand')).toEqual(['LIDC-IDRI-0314']);
    expect(box('bob dur')).toEqual(['LIDC-IDRI-0314']);
    expect(box('helene lef')).toEqual(['MR-0042']);
    expect(box('Hélène')).toEqual(['MR-0042']);
    expect(box('rand')).toEqual([]);
    expect(box('nobody')).toEqual([]);
  });
});
