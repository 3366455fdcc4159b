/** Hex encoding against a reference: every byte value, random lengths, both cases, refused input. */
import { describe, expect, it } from 'vitest';
import { fromHex, randomBytes, toHex } from './bytes.ts';

// The obvious implementation the table-driven one replaced, as the reference.
const refToHex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

describe('hex', () => {
  it('encodes every byte value as the reference does, and decodes it back', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(toHex(all)).toBe(refToHex(all));
    expect(fromHex(toHex(all))).toEqual(all);
    expect(fromHex(toHex(all).toUpperCase())).toEqual(all);
  });

  it('round-trips random bytes of random lengths', () => {
    for (let n = 0; n < 200; n++) {
      const b = randomBytes(n * 7);
      expect(toHex(b)).toBe(refToHex(b));
      expect(fromHex(toHex(b))).toEqual(b);
    }
  });

  it('refuses odd lengths and every character that is not a hex digit', () => {
    expect(() => fromHex('abc')).toThrow(/even-length hexadecimal/);
    for (const bad of ['0g', 'g0', ' 0', '0 ', '+1', '0x', '`0', '@0', '/0', ':0', '0G', '\u00e90'])
      expect(() => fromHex(bad), JSON.stringify(bad)).toThrow(/hexadecimal/);
    // Beyond ASCII (a table index would overflow), and one bad digit at the end of a long string.
    for (const bad of ['\u01300', '0\u0130', '\uffff\uffff', `${'ab'.repeat(4096)}0z`])
      expect(() => fromHex(bad), JSON.stringify(bad.slice(-4))).toThrow(/hexadecimal/);
    expect(fromHex('')).toEqual(new Uint8Array(0));
  });
});
