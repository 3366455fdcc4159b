/**
 * The producer hospital's records: `patient → study → series → instance (cloud id, wrapped key)`,
 * the tickets it issued (with the decision that allowed each and its break-glass review), the
 * delegations revoked before their expiry, and its audit chain; the migrations that make them, run at
 * start on SQLite or PostgreSQL.
 */
import type { Kysely, Migration } from 'kysely';
import {
  auditMigration,
  auditSyslogMigration,
  auditWitnessMigration,
  type AuditTables,
} from '../storage/audit-store.ts';

/** Delegations revoked before their expiry (`revocation.ts`), kept until then. */
export interface RevocationTables {
  revoked_statements: {
    jti: string;
    issuer: string;
    organization: string;
    expires_at: number;
    revoked_at: string;
  };
}

export interface ProducerTables extends AuditTables, RevocationTables {
  patients: { id: string; name: string; birth_date: string };
  studies: { uid: string; patient_id: string; description: string; date: string; modality: string };
  series: { uid: string; study_uid: string; number: number; description: string; modality: string };
  instances: {
    source_digest: string;
    status: string;
    cloud_id: string | null;
    upload_key: string;
    wrapped_key: string;
    /**
     * 1 when the pixels are sealed under their own key K_p (`FLAG_PIXEL_KEY`), so that a ticket for a
     * de-identified purpose can release them without the identity; 0 for instances protected before.
     */
    pixel_key: number;
    study_uid: string;
    series_uid: string;
    sop_uid: string;
    instance_number: number;
    position: number | null;
    created_at: string;
  };
  tickets: {
    tid: string;
    clinician: string;
    device: string;
    hospital: string;
    purpose: string;
    emergency: number;
    justification: string | null;
    patient_id: string;
    study_uid: string;
    trace: string;
    images: string;
    decision: string;
    issued_at: string;
    expires_at: number;
    review: string;
    reviewer: string | null;
    reviewed_at: string | null;
  };
}

export const producerMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0001_audit_syslog': auditSyslogMigration,
  '0002_producer': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('patients')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('birth_date', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('studies')
        .addColumn('uid', 'text', (c) => c.primaryKey())
        .addColumn('patient_id', 'text', (c) => c.notNull().references('patients.id'))
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('date', 'text', (c) => c.notNull())
        .addColumn('modality', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('series')
        .addColumn('uid', 'text', (c) => c.primaryKey())
        .addColumn('study_uid', 'text', (c) => c.notNull().references('studies.uid'))
        .addColumn('number', 'integer', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('modality', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('instances')
        .addColumn('source_digest', 'text', (c) => c.primaryKey())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('cloud_id', 'text', (c) => c.unique())
        .addColumn('upload_key', 'text', (c) => c.notNull())
        .addColumn('wrapped_key', 'text', (c) => c.notNull())
        .addColumn('study_uid', 'text', (c) => c.notNull())
        .addColumn('series_uid', 'text', (c) => c.notNull())
        .addColumn('sop_uid', 'text', (c) => c.notNull())
        .addColumn('instance_number', 'integer', (c) => c.notNull())
        .addColumn('position', 'double precision')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('tickets')
        .addColumn('tid', 'text', (c) => c.primaryKey())
        .addColumn('clinician', 'text', (c) => c.notNull())
        .addColumn('device', 'text', (c) => c.notNull())
        .addColumn('hospital', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('emergency', 'integer', (c) => c.notNull())
        .addColumn('justification', 'text')
        .addColumn('patient_id', 'text', (c) => c.notNull())
        .addColumn('study_uid', 'text', (c) => c.notNull())
        .addColumn('trace', 'text', (c) => c.notNull().unique())
        .addColumn('images', 'text', (c) => c.notNull())
        .addColumn('decision', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('review', 'text', (c) => c.notNull())
        .addColumn('reviewer', 'text')
        .addColumn('reviewed_at', 'text')
        .execute();
    },
  },
  '0003_revoked_statements': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('revoked_statements')
        .addColumn('jti', 'text', (c) => c.primaryKey())
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('organization', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0004_pixel_key': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('instances')
        .addColumn('pixel_key', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
};
