/** The integrity badge of one image, and the summary of a series, from the badge model. */
import type { BadgeModel } from './badge-model.ts';
import type { SeriesCounts } from '../study/session.ts';

export function Badge({ model, pending }: { model?: BadgeModel; pending?: string }) {
  if (!model)
    return (
      <span className="badge pending" data-testid="integrity-badge" data-state="pending">
        {pending ?? 'Checking…'}
      </span>
    );
  return (
    <span
      className={`badge ${model.state}`}
      data-testid="integrity-badge"
      data-state={model.state}
      title={model.lines.join('\n')}
    >
      {model.title}
    </span>
  );
}

/** "Verified — 150 of 150 images", or the worst state with its count. */
export function seriesSummary(c: SeriesCounts): { state: string; text: string } {
  const checked = c.verified + c.tampered + c.unverifiable;
  if (c.tampered > 0)
    return { state: 'tampered', text: `Tampered — ${c.tampered} of ${c.total} images` };
  if (c.unverifiable > 0)
    return { state: 'unverifiable', text: `Unverifiable — ${c.unverifiable} of ${c.total} images` };
  if (c.failed > 0)
    return { state: 'unverifiable', text: `Unverifiable — ${c.failed} of ${c.total} not received` };
  if (checked === c.total && c.total > 0)
    return { state: 'verified', text: `Verified — ${c.verified} of ${c.total} images` };
  return { state: 'pending', text: `Checking — ${checked} of ${c.total} images` };
}

export function SeriesBadge({ counts }: { counts: SeriesCounts }) {
  const s = seriesSummary(counts);
  return (
    <span className={`badge ${s.state}`} data-testid="series-badge" data-state={s.state}>
      {s.text}
    </span>
  );
}
