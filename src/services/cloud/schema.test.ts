// How the cloud keeps a trace basis in its instances table: written and read back whole, and the
// placement alone read without decoding the sealed bytes — for v2 rows, rows with a placement but
// no seal digest, and rows written before placements were kept.
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../core/bytes.ts';
import type { TraceBasis } from '../../core/protect/index.ts';
import { basisFromText, basisToText, placementFromText } from './schema.ts';

const placement = { offset: 1234, wordBytes: 2, L: 3, fromBit: 96, bits: 4096 };
const bases: Record<string, TraceBasis> = {
  'a v2 image': {
    sealedBytes: randomBytes(2312),
    sealSignature: randomBytes(64),
    placement,
    sealDigest: randomBytes(32),
  },
  'a placement, no seal digest': {
    sealedBytes: randomBytes(700),
    sealSignature: randomBytes(64),
    placement: { ...placement, offset: 0, wordBytes: 1, L: 1 },
  },
  'a row from before placements': { sealedBytes: randomBytes(300), sealSignature: randomBytes(71) },
};

describe('the stored trace basis', () => {
  for (const [name, basis] of Object.entries(bases))
    it(`reads back ${name} whole, and its placement alone`, () => {
      const text = basisToText(basis);
      expect(basisFromText(text)).toEqual(basis);
      expect(placementFromText(text)).toEqual(basis.placement);
    });

  it('finds no placement in a damaged row', () => {
    const text = basisToText(bases['a v2 image']!);
    const [sealed, signature, , seal] = text.split('.');
    expect(placementFromText(`${sealed}.${signature}.1:2:3.${seal}`)).toBeUndefined();
    expect(placementFromText(`${sealed}`)).toBeUndefined();
    expect(placementFromText('')).toBeUndefined();
  });
});
