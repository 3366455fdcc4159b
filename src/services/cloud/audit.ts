/**
 * The cloud provider's operations for auditors: its audit trail (redemptions, trace insertions,
 * retrievals, refused tickets), with its chain verified and a fresh signed checkpoint, filterable by
 * ticket, image, clinician and time. Decided by the policy and logged like every auditor access.
 */
import {
  AUDIT_DOMAIN,
  auditTrailOperations,
  type AuditAccessDeps,
} from '../common/audit-access.ts';
import type { Operation, StreamOperation } from '../common/session.ts';

export function cloudAuditOperations(
  deps: Omit<AuditAccessDeps, 'domain'> & { readonly domain?: string },
): { operations: Record<string, Operation>; streams: Record<string, StreamOperation> } {
  return auditTrailOperations({ ...deps, domain: deps.domain ?? AUDIT_DOMAIN });
}
