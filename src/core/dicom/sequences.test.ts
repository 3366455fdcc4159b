// Sequences and items of every length encoding: hand-built data sets with each combination of
// defined and undefined sequence and item lengths (nested, empty items, empty sequences), in
// Explicit VR Little Endian, Implicit VR Little Endian and Explicit VR Big Endian, must parse to the
// same data set and be written as the one canonical defined-length encoding — which DCMTK reads
// without a warning. Before the fix, the Item Delimitation Item closing an undefined-length item
// was kept as an element and written inside a defined-length item (issue 20).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isZtvError } from '../errors.ts';
import { DataSet } from './dataset.ts';
import { parseDicom } from './parse.ts';
import { TS } from './tags.ts';
import { writeDataSet, writePart10 } from './write.ts';

type Syntax = 'explicit-le' | 'implicit-le' | 'explicit-be';
type Len = 'defined' | 'undefined';

/** A hand encoder of the three uncompressed syntaxes, lengths chosen per sequence and item. */
class Enc {
  constructor(readonly syntax: Syntax) {}
  private get le(): boolean {
    return this.syntax !== 'explicit-be';
  }
  private u16(v: number): number[] {
    return this.le ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff];
  }
  private u32(v: number): number[] {
    const b = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
    return this.le ? b : b.reverse();
  }
  private tag(t: number): number[] {
    return [...this.u16(t >>> 16), ...this.u16(t & 0xffff)];
  }
  /** An element with a value: text padded to even length by the caller. */
  el(t: number, vr: string, value: number[]): number[] {
    if (this.syntax === 'implicit-le') return [...this.tag(t), ...this.u32(value.length), ...value];
    const long = ['OB', 'OW', 'SQ', 'UN', 'UT', 'UC', 'UR', 'OF', 'OL', 'OD', 'OV', 'SV', 'UV'];
    const head = [...this.tag(t), vr.charCodeAt(0), vr.charCodeAt(1)];
    return long.includes(vr)
      ? [...head, 0, 0, ...this.u32(value.length), ...value]
      : [...head, ...this.u16(value.length), ...value];
  }
  text(t: number, vr: string, s: string): number[] {
    const b = [...s].map((c) => c.charCodeAt(0));
    if (b.length & 1) b.push(vr === 'UI' ? 0 : 0x20);
    return this.el(t, vr, b);
  }
  us(t: number, v: number): number[] {
    return this.el(t, 'US', this.u16(v));
  }
  item(content: number[], len: Len): number[] {
    if (len === 'defined')
      return [...this.tag(0xfffee000), ...this.u32(content.length), ...content];
    return [
      ...this.tag(0xfffee000),
      ...this.u32(0xffffffff),
      ...content,
      ...this.tag(0xfffee00d),
      ...this.u32(0),
    ];
  }
  sq(t: number, items: number[][], len: Len, vr = 'SQ'): number[] {
    const body = items.flat();
    if (len === 'defined') return this.el(t, vr, body);
    const head =
      this.syntax === 'implicit-le'
        ? [...this.tag(t), ...this.u32(0xffffffff)]
        : [...this.tag(t), vr.charCodeAt(0), vr.charCodeAt(1), 0, 0, ...this.u32(0xffffffff)];
    return [...head, ...body, ...this.tag(0xfffee0dd), ...this.u32(0)];
  }
}

const ReferencedSeriesSequence = 0x00081115;
const ReferencedImageSequence = 0x00081140;
const ReferencedSOPClassUID = 0x00081150;
const ReferencedSOPInstanceUID = 0x00081155;
const SeriesInstanceUID = 0x0020000e;
const PatientName = 0x00100010;
const Modality = 0x00080060;
const Rows = 0x00280010;

/** How lengths are encoded at each level: outer sequence, its items, inner sequence, its items. */
interface Shape {
  outerSq: Len;
  outerItem: Len;
  innerSq: Len;
  innerItem: Len;
}

/**
 * A data set with a sequence of two items, the first holding a nested sequence of two items (one of
 * them empty) followed by an element, the second item empty; then an empty sequence; then elements
 * after both, so that a reader that loses its place shows it.
 */
function build(e: Enc, s: Shape): Uint8Array {
  const inner = e.sq(
    ReferencedImageSequence,
    [
      e.item(
        [
          ...e.text(ReferencedSOPClassUID, 'UI', '1.2.840.10008.5.1.4.1.1.2'),
          ...e.text(ReferencedSOPInstanceUID, 'UI', '1.2.3.4.5'),
        ],
        s.innerItem,
      ),
      e.item([], s.innerItem),
    ],
    s.innerSq,
  );
  const outer = e.sq(
    ReferencedSeriesSequence,
    [
      e.item([...inner, ...e.text(SeriesInstanceUID, 'UI', '1.2.3.4')], s.outerItem),
      e.item([], s.outerItem),
    ],
    s.outerSq,
  );
  // (0008,1140) at the top level: an empty sequence, encoded with the inner sequence's length form.
  const empty = e.sq(ReferencedImageSequence, [], s.innerSq);
  return Uint8Array.from([
    ...e.text(Modality, 'CS', 'CT'),
    ...outer,
    ...empty,
    ...e.text(PatientName, 'PN', 'Doe^Jane'),
    ...e.us(Rows, 512),
  ]);
}

const ALL_DEFINED: Shape = {
  outerSq: 'defined',
  outerItem: 'defined',
  innerSq: 'defined',
  innerItem: 'defined',
};
/** What every combination must be written as: Explicit VR Little Endian, every length defined. */
const CANONICAL = build(new Enc('explicit-le'), ALL_DEFINED);

const LENS: Len[] = ['defined', 'undefined'];
const SHAPES: Shape[] = LENS.flatMap((outerSq) =>
  LENS.flatMap((outerItem) =>
    LENS.flatMap((innerSq) =>
      LENS.map((innerItem) => ({ outerSq, outerItem, innerSq, innerItem })),
    ),
  ),
);
const SYNTAX_UID: Record<Syntax, string> = {
  'explicit-le': TS.ExplicitLittle,
  'implicit-le': TS.ImplicitLittle,
  'explicit-be': TS.ExplicitBig,
};
const CASES = (['explicit-le', 'implicit-le', 'explicit-be'] as Syntax[]).flatMap((syntax) =>
  SHAPES.map((shape) => ({
    name: `${syntax}: sequence ${shape.outerSq} / items ${shape.outerItem}, nested sequence ${shape.innerSq} / items ${shape.innerItem}`,
    syntax,
    shape,
  })),
);

const parse = (bytes: Uint8Array, syntax: Syntax) =>
  parseDicom(bytes, 'the hand-built data set', { bareSyntax: SYNTAX_UID[syntax] });

const dir = mkdtempSync(join(tmpdir(), 'ztv-sequences-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sequences and items of every length encoding are written as defined-length items', () => {
  it.each(CASES)('$name', ({ syntax, shape }) => {
    const parsed = parse(build(new Enc(syntax), shape), syntax);
    expect(parsed.warnings).toEqual([]);
    const ds = parsed.dataset;
    const outer = ds.get(ReferencedSeriesSequence)!;
    expect(outer.items?.length).toBe(2);
    const [first, second] = outer.items!;
    expect(first!.elements().map((el) => el.tag)).toEqual([
      ReferencedImageSequence,
      SeriesInstanceUID,
    ]);
    expect(second!.size).toBe(0);
    const inner = first!.get(ReferencedImageSequence)!.items!;
    expect(inner.map((it) => it.size)).toEqual([2, 0]);
    expect(inner[0]!.text(ReferencedSOPInstanceUID)).toBe('1.2.3.4.5');
    expect(ds.get(ReferencedImageSequence)!.items).toEqual([]);
    expect(ds.text(PatientName)).toBe('Doe^Jane');
    expect(ds.number(Rows)).toBe(512);
    // No delimiter survives anywhere as an element.
    const tags = (d: DataSet): number[] =>
      d.elements().flatMap((el) => [el.tag, ...(el.items ?? []).flatMap(tags)]);
    expect(tags(ds).filter((t) => t >>> 16 === 0xfffe)).toEqual([]);
    expect(writeDataSet(ds)).toEqual(CANONICAL);
  });

  it('a UN element of undefined length (items in Implicit VR Little Endian) becomes a sequence', () => {
    const ex = new Enc('explicit-le');
    const im = new Enc('implicit-le');
    const items = [
      im.item(im.text(ReferencedSOPInstanceUID, 'UI', '1.2.3.4.5'), 'undefined'),
      im.item([], 'undefined'),
    ];
    const bytes = Uint8Array.from([
      ...ex.sq(ReferencedImageSequence, items, 'undefined', 'UN'),
      ...ex.text(PatientName, 'PN', 'Doe^Jane'),
    ]);
    const ds = parse(bytes, 'explicit-le').dataset;
    const seq = ds.get(ReferencedImageSequence)!;
    expect(seq.vr).toBe('SQ');
    expect(seq.items!.map((it) => it.elements().map((el) => el.tag))).toEqual([
      [ReferencedSOPInstanceUID],
      [],
    ]);
    expect(writeDataSet(ds)).toEqual(
      Uint8Array.from([
        ...ex.sq(
          ReferencedImageSequence,
          [
            ex.item(ex.text(ReferencedSOPInstanceUID, 'UI', '1.2.3.4.5'), 'defined'),
            ex.item([], 'defined'),
          ],
          'defined',
        ),
        ...ex.text(PatientName, 'PN', 'Doe^Jane'),
      ]),
    );
  });

  it('the writer refuses a delimiter handed to it as a data element', () => {
    const ds = new DataSet();
    ds.set({ tag: 0xfffee00d, vr: 'UN', value: new Uint8Array(0) });
    let err: unknown;
    try {
      writeDataSet(ds);
    } catch (e) {
      err = e;
    }
    expect(isZtvError(err) && err.code === 'bad-input').toBe(true);
  });

  it('DCMTK reads every written file without a warning', () => {
    const files = CASES.map(({ syntax, shape }, i) => {
      const ds = parse(build(new Enc(syntax), shape), syntax).dataset;
      ds.setText(0x00080016, 'UI', '1.2.840.10008.5.1.4.1.1.7');
      ds.setText(0x00080018, 'UI', `1.2.3.${i + 1}`);
      const f = join(dir, `case${i}.dcm`);
      writeFileSync(
        f,
        writePart10(
          { sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: `1.2.3.${i + 1}` },
          ds,
        ).bytes,
      );
      return f;
    });
    // dcmdump prints "W:"/"E:" lines on stderr for anything it had to tolerate; -q keeps the rest quiet.
    const run = spawnSync('dcmdump', ['-q', ...files], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr + run.stdout).not.toMatch(/^[WE]:/m);
    const dumped = execFileSync('dcmdump', [files[0]!], { encoding: 'utf8' });
    expect(dumped).toContain('(fffe,e000) na (Item with explicit length #=2)');
  });
});
