/**
 * Placeholder of the auditor area (audit trail, leak tracing, break-glass reviews): another engineer
 * builds it here. The viewer's seam: `AuditArea` is mounted as the "Audit" tab for the roles
 * `auditTabVisible` admits, with the signed-in session's endpoints and token.
 */
import type { Endpoints } from '../../core/client/federation.ts';

export interface AuditAreaProps {
  readonly endpoints: Endpoints;
  /** The consumer hospital's sign-in token of the auditor (memory only). */
  readonly token: string;
  readonly clinician: { readonly id: string; readonly name: string; readonly role: string };
}

export const auditTabVisible = (role: string): boolean => role === 'auditor';

export function AuditArea(_props: AuditAreaProps) {
  return (
    <div className="placeholder" data-testid="audit-area">
      <h2>Audit</h2>
      <p>The audit trail, leak tracing and break-glass reviews will appear here.</p>
    </div>
  );
}
