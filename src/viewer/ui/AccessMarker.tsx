/**
 * The marker of an emergency (break-the-glass) access, shown above the study for as long as it is
 * open: what kind of access it is, whether an auditor reviews it, and the justification given.
 */
import type { OpenedAccess } from './access-model.ts';

export function AccessMarker({ access }: { access: OpenedAccess }) {
  return (
    <div className="break-glass-marker" role="status" data-testid="break-glass-marker">
      <strong>{access.text}</strong>
      {access.justification && (
        <span data-testid="break-glass-justification">
          {' '}
          · Justification: “{access.justification}”
        </span>
      )}
    </div>
  );
}
