// The badge components as rendered HTML: the test hook and the text each state starts with, and the
// series summary (worst state first, with its count).
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { SeriesCounts } from '../study/session.ts';
import { Badge, SeriesBadge, seriesSummary } from './Badge.tsx';
import type { BadgeModel } from './badge-model.ts';

const counts = (c: Partial<SeriesCounts>): SeriesCounts => ({
  total: 150,
  received: 150,
  verified: 0,
  tampered: 0,
  unverifiable: 0,
  failed: 0,
  ...c,
});

describe('badge components', () => {
  it('renders each state with its test hook and title', () => {
    for (const [state, title] of [
      ['verified', 'Verified'],
      ['tampered', 'Tampered — pixels'],
      ['unverifiable', 'Unverifiable'],
    ] as const) {
      const model: BadgeModel = { state, title, lines: ['why'], failed: [] };
      const html = renderToStaticMarkup(createElement(Badge, { model }));
      expect(html).toContain('data-testid="integrity-badge"');
      expect(html).toContain(`data-state="${state}"`);
      expect(html).toMatch(new RegExp(`>${title}</span>$`));
    }
    expect(renderToStaticMarkup(createElement(Badge, {}))).toContain('Checking…');
  });

  it('summarises a series by its worst state', () => {
    expect(seriesSummary(counts({ verified: 150 }))).toEqual({
      state: 'verified',
      text: 'Verified — 150 of 150 images',
    });
    expect(seriesSummary(counts({ verified: 148, tampered: 1, unverifiable: 1 })).text).toBe(
      'Tampered — 1 of 150 images',
    );
    expect(seriesSummary(counts({ verified: 149, unverifiable: 1 })).state).toBe('unverifiable');
    expect(seriesSummary(counts({ verified: 149, failed: 1 })).text).toBe(
      'Unverifiable — 1 of 150 not received',
    );
    expect(seriesSummary(counts({ verified: 20 })).text).toBe('Checking — 20 of 150 images');
    expect(
      renderToStaticMarkup(createElement(SeriesBadge, { counts: counts({ verified: 150 }) })),
    ).toContain('data-testid="series-badge"');
  });
});
