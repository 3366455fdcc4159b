/**
 * The authority's records: the certificates it issued or imported (with revocation and trust-group
 * admission), every trust group version it published, its CRLs, and its audit chain; the migrations
 * that make them, run at start on SQLite or PostgreSQL.
 */
import type { Kysely, Migration } from 'kysely';
import { witnessMigration, type WitnessTables } from './witness.ts';
import {
  auditMigration,
  auditSyslogMigration,
  auditWitnessMigration,
  type AuditTables,
} from '../storage/audit-store.ts';

export interface AuthorityTables extends AuditTables, WitnessTables {
  certificates: {
    serial: string;
    member_id: string;
    name: string;
    role: string;
    thumbprint: string;
    pem: string;
    issued_at: string;
    revoked_at: string | null;
    reason: string | null;
    /** 1 while the member is in the trust group; 0 once removed (the certificate stays valid). */
    admitted: number;
    /** For a hospital's device CA: the organisation its devices belong to. */
    organization: string | null;
  };
  trust_groups: { version: number; jws: string; issued_at: string };
  crls: { seq: number; pem: string; this_update: string };
}

export const authorityMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0001_audit_syslog': auditSyslogMigration,
  '0002_authority': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('certificates')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('member_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('thumbprint', 'text', (c) => c.notNull().unique())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('reason', 'text')
        .addColumn('admitted', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('organization', 'text')
        .execute();
      await db.schema
        .createTable('trust_groups')
        .addColumn('version', 'integer', (c) => c.primaryKey())
        .addColumn('jws', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('crls')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('this_update', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0003_witness': witnessMigration,
};
