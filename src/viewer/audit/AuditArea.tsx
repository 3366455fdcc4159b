/**
 * The auditor area, mounted as the "Audit" tab for the roles `auditTabVisible` admits: leak tracing of
 * dropped files, the merged and locally verified audit trail with its exports, and the break-glass
 * reviews. One `AuditorClient` per sign-in, over this device's non-extractable keys and the pinned
 * trust; its sessions (producer, cloud, consumer) open on first use and close when the area goes.
 */
import { useEffect, useMemo, useState } from 'react';
import type { AuditorClient } from '../../core/audit/client.ts';
import type { Endpoints } from '../../core/client/federation.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import { openAuditor, type AuditorDevice } from './auditor.ts';
import { BreakGlassReviews } from './BreakGlassReviews.tsx';
import { LeakTrace } from './LeakTrace.tsx';
import { TrailPanel, type TrailRequest } from './TrailPanel.tsx';
import { organisationNames } from './trail-model.ts';

export interface AuditAreaProps {
  readonly endpoints: Endpoints;
  /** The consumer hospital's sign-in token of the auditor (memory only). */
  readonly token: string;
  readonly clinician: { readonly id: string; readonly name: string; readonly role: string };
  /** This device's keys (non-extractable) and certificate chain, as enrolled for the auditor. */
  readonly device: AuditorDevice;
  /** The federation PKI as pinned at sign-in. */
  readonly trust: PkiView;
}

export const auditTabVisible = (role: string): boolean => role === 'auditor';

type Section = 'leak' | 'trail' | 'break-glass';
const SECTIONS: readonly [Section, string][] = [
  ['leak', 'Leak tracing'],
  ['trail', 'Audit trail'],
  ['break-glass', 'Break-glass reviews'],
];

export function AuditArea({ endpoints, device, trust }: AuditAreaProps) {
  const [client, setClient] = useState<AuditorClient>();
  const [section, setSection] = useState<Section>('leak');
  const [trailRequest, setTrailRequest] = useState<TrailRequest>();
  const names = useMemo(() => organisationNames(trust.trustGroup.members), [trust]);
  useEffect(() => {
    const c = openAuditor(endpoints, device, trust);
    setClient(c);
    return () => void c.close().catch(() => undefined);
  }, [endpoints, device, trust]);

  return (
    <div className="page audit" data-testid="audit-area">
      <nav className="audit-nav" aria-label="Audit">
        {SECTIONS.map(([id, label]) => (
          <button
            key={id}
            aria-pressed={section === id}
            data-testid={`audit-${id}`}
            onClick={() => setSection(id)}
          >
            {label}
          </button>
        ))}
      </nav>
      {client && (
        <>
          <div hidden={section !== 'leak'}>
            <LeakTrace
              client={client}
              onTrail={(ticket) => {
                setTrailRequest((r) => ({ id: (r?.id ?? 0) + 1, kind: 'ticket', value: ticket }));
                setSection('trail');
              }}
            />
          </div>
          <div hidden={section !== 'trail'}>
            <TrailPanel
              client={client}
              names={names}
              {...(trailRequest ? { request: trailRequest } : {})}
            />
          </div>
          {section === 'break-glass' && <BreakGlassReviews client={client} />}
        </>
      )}
    </div>
  );
}
