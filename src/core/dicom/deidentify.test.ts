// De-identification keeps every original it changes: re-identification gives back the exact data set,
// and the clear data set holds no value the Basic Profile says must go.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sampleFiles } from '../../../test/samples.ts';
import { toHex } from '../bytes.ts';
import { BASIC_PROFILE_ACTIONS } from './confidentiality-profile.ts';
import { DataSet } from './dataset.ts';
import { deidentify, MARKER_TAGS, newUid, reidentify } from './deidentify.ts';
import { parseDicom } from './parse.ts';
import { T } from './tags.ts';
import { writeDataSet } from './write.ts';

const canonical = (ds: DataSet) => toHex(writeDataSet(ds));
const removed = new Set(BASIC_PROFILE_ACTIONS['X']!);

describe('Basic Profile de-identification', () => {
  it.each(sampleFiles('small').map((f) => [f.split('/').pop()!, f]))(
    '%s: exact round trip',
    (_n, f) => {
      const ds = parseDicom(new Uint8Array(readFileSync(f))).dataset;
      ds.delete(T.PixelData);
      const d = deidentify(ds);
      expect(canonical(reidentify(d.clear, d.originals, d.added))).toBe(canonical(ds));
      for (const el of d.clear.elements()) {
        expect(removed.has(el.tag), `${el.tag.toString(16)} should be removed`).toBe(false);
        expect((el.tag >>> 16) & 1, `private ${el.tag.toString(16)} should be removed`).toBe(0);
      }
      expect(d.clear.text(T.PatientIdentityRemoved)).toBe('YES');
      const pid = ds.text(T.PatientID);
      if (pid) expect(d.clear.text(T.PatientID) ?? '').not.toBe(pid);
      const sop = ds.text(T.SOPInstanceUID);
      if (sop) {
        expect(d.clear.text(T.SOPInstanceUID)).toMatch(/^2\.25\.\d+$/);
        expect(d.uidMap.get(sop)).toBe(d.clear.text(T.SOPInstanceUID));
      }
    },
  );

  it('replaces a UID consistently wherever it appears, nested sequences included', () => {
    const item = new DataSet();
    item.setText(0x00081155, 'UI', '1.2.3.4'); // Referenced SOP Instance UID
    const ds = new DataSet();
    ds.setText(T.SOPInstanceUID, 'UI', '1.2.3.4');
    ds.set({ tag: 0x00081115, vr: 'SQ', items: [item] }); // Referenced Series Sequence (kept)
    const d = deidentify(ds);
    const nested = d.clear.get(0x00081115)!.items![0]!.text(0x00081155);
    expect(nested).toBe(d.clear.text(T.SOPInstanceUID));
    expect(nested).not.toBe('1.2.3.4');
  });

  it('keeps markers the original already had with the same value, and restores different ones', () => {
    const ds = new DataSet();
    ds.setText(T.PatientIdentityRemoved, 'CS', 'YES');
    ds.setText(T.DeidentificationMethod, 'LO', 'somebody else');
    const d = deidentify(ds);
    expect(d.added).toEqual([T.DeidentificationMethodCodeSequence]);
    expect(canonical(reidentify(d.clear, d.originals, d.added))).toBe(canonical(ds));
    expect(MARKER_TAGS).toContain(T.DeidentificationMethod);
  });

  it('makes 2.25 UIDs of at most 64 characters', () => {
    for (let i = 0; i < 200; i++) expect(newUid()).toMatch(/^2\.25\.[1-9]\d{0,38}$/);
  });
});
