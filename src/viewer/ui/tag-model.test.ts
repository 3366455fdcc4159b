// The tag browser shows a sequence closed until opened (its items, then their elements, beneath it),
// and a filter shows each match with the sequence and item that hold it; the worker's header rows of a
// real file put a sequence's items and elements beneath it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { samplePath } from '../../../test/samples.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { headerRows } from '../pipeline/job.ts';
import type { TagRow } from '../pipeline/protocol.ts';
import { shownRows } from './tag-model.ts';

const row = (tag: string, name: string, depth: number, value = '', vr = 'CS'): TagRow => ({
  tag,
  vr,
  name,
  value,
  depth,
});

const HEADER: TagRow[] = [
  row('(0008,0000)', 'GenericGroupLength', 0, '394', 'UL'),
  row('(0008,1140)', 'ReferencedImageSequence', 0, '2 item(s)', 'SQ'),
  row('(FFFE,E000)', 'Item', 1, 'item 1 of 2', ''),
  row('(0008,1155)', 'ReferencedSOPInstanceUID', 2, '1.2.3.4', 'UI'),
  row('(FFFE,E000)', 'Item', 1, 'item 2 of 2', ''),
  row('(0008,1155)', 'ReferencedSOPInstanceUID', 2, '1.2.3.5', 'UI'),
  row('(0010,0020)', 'PatientID', 0, 'LIDC-IDRI-0314', 'LO'),
];

const names = (rs: ReturnType<typeof shownRows>) => rs.map((r) => `${r.row.name}@${r.index}`);

describe('shownRows', () => {
  it('shows a sequence closed, its items and their elements once opened', () => {
    const closed = shownRows(HEADER, new Set());
    expect(names(closed)).toEqual([
      'GenericGroupLength@0',
      'ReferencedImageSequence@1',
      'PatientID@6',
    ]);
    expect(closed[1]).toMatchObject({ parent: true, open: false });
    expect(closed[0]).toMatchObject({ parent: false });
    // The sequence open, its items closed: the items only.
    expect(names(shownRows(HEADER, new Set([1])))).toEqual([
      'GenericGroupLength@0',
      'ReferencedImageSequence@1',
      'Item@2',
      'Item@4',
      'PatientID@6',
    ]);
    // The second item open too.
    expect(names(shownRows(HEADER, new Set([1, 4])))).toEqual([
      'GenericGroupLength@0',
      'ReferencedImageSequence@1',
      'Item@2',
      'Item@4',
      'ReferencedSOPInstanceUID@5',
      'PatientID@6',
    ]);
    // An opened item under a closed sequence stays hidden.
    expect(names(shownRows(HEADER, new Set([4])))).toEqual(names(closed));
  });

  it('filters by tag, keyword or value, showing the sequence and item around a match', () => {
    expect(names(shownRows(HEADER, new Set(), '1.2.3.5'))).toEqual([
      'ReferencedImageSequence@1',
      'Item@4',
      'ReferencedSOPInstanceUID@5',
    ]);
    expect(names(shownRows(HEADER, new Set(), '(0010,0020)'))).toEqual(['PatientID@6']);
    expect(names(shownRows(HEADER, new Set(), 'grouplength'))).toEqual(['GenericGroupLength@0']);
  });
});

describe('the header rows of a real file', () => {
  it('puts a sequence’s items beneath it and their elements deeper', () => {
    const ds = parseDicom(
      new Uint8Array(readFileSync(samplePath('small/dcm_qa_ts_1_explicit_le.dcm'))),
    ).dataset;
    const rows = headerRows(ds);
    const sq = rows.findIndex((r) => r.tag === '(0008,1140)');
    expect(rows[sq]).toMatchObject({ vr: 'SQ', name: 'ReferencedImageSequence', depth: 0 });
    expect(rows[sq + 1]).toMatchObject({ tag: '(FFFE,E000)', name: 'Item', depth: 1 });
    expect(rows[sq + 1]!.value).toBe('item 1 of 3');
    expect(rows[sq + 2]).toMatchObject({ tag: '(0008,1150)', depth: 2 });
    expect(rows.filter((r) => r.tag === '(FFFE,E000)' && r.depth === 1)).toHaveLength(3);
    // Closed, the sequence shows alone; opened, its three items.
    const closed = shownRows(rows, new Set());
    expect(closed.some((r) => r.row.name === 'Item')).toBe(false);
    expect(shownRows(rows, new Set([sq])).filter((r) => r.row.name === 'Item')).toHaveLength(3);
  });
});
