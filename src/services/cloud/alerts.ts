/** The cloud's security alerts: every refused upload, ticket, redemption or release is logged. */
import type { AuditStore } from '../storage/audit-store.ts';

export type Alert = (
  subtype: string,
  actor: { id: string; device?: string },
  details: Record<string, unknown>,
) => Promise<unknown>;

/** An alert appender on the cloud's audit chain (DICOM 110113 Security Alert, serious failure). */
export const alerts =
  (audit: AuditStore): Alert =>
  (subtype, actor, details) =>
    audit.append({
      event: '110113',
      subtype,
      action: 'E',
      outcome: 8,
      actor,
      objects: [],
      details,
    });
