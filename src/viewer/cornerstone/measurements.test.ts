// How measurements read: Cornerstone's computed statistics in words with their units ("px" stays
// "px"), and what the panel says each rests on (verified pixels, or the check that failed).
import { describe, expect, it } from 'vitest';
import type { Check } from '../../core/protect/verdict.ts';
import { restsOn } from '../ui/MeasurementsPanel.tsx';
import { describeStats } from './measurements.ts';

describe('measurement values', () => {
  it('reads lengths, angles, bidirectionals, ROIs and probes with their units', () => {
    expect(describeStats('length', { length: 23.456, unit: 'mm' })).toBe('23.46 mm');
    expect(describeStats('length', { length: 40, unit: 'px' })).toBe('40.00 px');
    expect(describeStats('angle', { angle: 45.04 })).toBe('45.0°');
    expect(describeStats('angle', { angle: 'Incomplete Angle' })).toBe('incomplete');
    expect(describeStats('bidirectional', { length: 12.3, width: 8.25, unit: 'mm' })).toBe(
      'long 12.30 × short 8.25 mm',
    );
    expect(
      describeStats('ellipse', {
        mean: -12.34,
        stdDev: 4.5,
        min: -40,
        max: 20,
        area: 123.456,
        areaUnit: 'mm²',
        modalityUnit: 'HU',
      }),
    ).toBe('mean −12.3 HU, SD 4.5, min −40.0, max 20.0, area 123.46 mm²');
    expect(describeStats('probe', { value: -850, modalityUnit: 'HU' })).toBe('−850.0 HU');
    expect(describeStats('probe', undefined)).toBe('not computed yet');
  });
});

describe('what a measurement rests on', () => {
  const failed: Check[] = [
    { id: 'pixels.original', part: 'pixels', result: 'fail', detail: 'pixel tile 7 differs' },
  ] as unknown as Check[];
  it('says verified pixels, or names the failed check', () => {
    expect(restsOn({ state: 'verified', title: 'Verified', lines: [], failed: [] })).toBe(
      'Rests on verified pixels',
    );
    expect(restsOn({ state: 'tampered', title: 'Tampered — pixels', lines: [], failed })).toBe(
      'Made on a Tampered image: pixel tile 7 differs',
    );
    expect(
      restsOn({
        state: 'unverifiable',
        title: 'Unverifiable',
        lines: ['unknown signer'],
        failed: [],
      }),
    ).toBe('Made on an Unverifiable image: unknown signer');
    expect(restsOn(undefined)).toMatch(/^Not verified/);
  });
});
