/**
 * The consumer hospital's records: its clinicians (scrypt password hashes), sign-in tokens (hashed),
 * enrolled devices and its device CRLs, the care relationships role assignments are made from, and its
 * audit chain; the migrations that make them, and the helpers that add clinicians and care.
 */
import type { Kysely, Migration } from 'kysely';
import type { StructuralRole } from '../../core/pki/oids.ts';
import {
  auditMigration,
  auditSyslogMigration,
  auditWitnessMigration,
  type AuditTables,
} from '../storage/audit-store.ts';

export interface ConsumerTables extends AuditTables {
  clinicians: {
    id: string;
    name: string;
    password_hash: string;
    role: string;
    domain: string;
    active: number;
  };
  login_tokens: { token_hash: string; clinician_id: string; expires_at: number; revoked: number };
  devices: {
    serial: string;
    clinician_id: string;
    thumbprint: string;
    pem: string;
    issued_at: string;
    revoked_at: string | null;
  };
  device_crls: { seq: number; pem: string; this_update: string };
  /** Who takes care of whom: the source of functional-role assignments. */
  care: {
    clinician_id: string;
    role: string;
    patient: string | null;
    study: string | null;
    until: number;
  };
}

export const consumerMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0001_audit_syslog': auditSyslogMigration,
  '0002_consumer': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('clinicians')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema
        .createTable('login_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('clinician_id', 'text', (c) => c.notNull().references('clinicians.id'))
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable('devices')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('clinician_id', 'text', (c) => c.notNull().references('clinicians.id'))
        .addColumn('thumbprint', 'text', (c) => c.notNull())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('care')
        .addColumn('clinician_id', 'text', (c) => c.notNull().references('clinicians.id'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('patient', 'text')
        .addColumn('study', 'text')
        .addColumn('until', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('device_crls')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('this_update', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

export interface Clinician {
  readonly id: string;
  readonly name: string;
  readonly role: StructuralRole;
  readonly domain: string;
}

/** Records that a clinician takes care of a patient (or reads a study) until a time. */
export async function addCare(
  db: Kysely<ConsumerTables>,
  c: { clinician: string; role: string; patient?: string; study?: string; until: number },
): Promise<void> {
  await db
    .insertInto('care')
    .values({
      clinician_id: c.clinician,
      role: c.role,
      patient: c.patient ?? null,
      study: c.study ?? null,
      until: c.until,
    })
    .execute();
}

/** Adds a clinician account (demo seeding, administration). */
export async function addClinician(
  db: Kysely<ConsumerTables>,
  c: Clinician & { passwordHash: string },
): Promise<void> {
  await db
    .insertInto('clinicians')
    .values({
      id: c.id,
      name: c.name,
      password_hash: c.passwordHash,
      role: c.role,
      domain: c.domain,
      active: 1,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}
