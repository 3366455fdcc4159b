/**
 * The cloud's records: the protected instances it stores (with the trace basis read once at upload),
 * the spent ticket nonces, the redemptions and their traced items, and its audit chain; the
 * migrations that make them, run at start on SQLite or PostgreSQL.
 */
import type { Kysely, Migration } from 'kysely';
import { fromHex, toHex } from '../../core/bytes.ts';
import type { TraceBasis, TracePlacement } from '../../core/protect/index.ts';
import {
  auditMigration,
  auditSyslogMigration,
  auditWitnessMigration,
  type AuditTables,
} from '../storage/audit-store.ts';

export interface CloudTables extends AuditTables {
  instances: {
    id: string;
    producer: string;
    upload_key: string;
    digest: string;
    size: number;
    created_at: string;
    /** Hex of the sealed container bytes and the seal signature: what a trace signs (public). */
    trace_basis: string | null;
  };
  spent_nonces: { nonce: string; ticket: string; spent_at: string };
  redemptions: {
    id: string;
    ticket: string;
    device: string;
    clinician: string;
    created_at: string;
    expires_at: number;
  };
  redemption_items: { redemption: string; position: number; image: string; slot: string };
}

export const cloudMigrations: Record<string, Migration> = {
  '0001_audit': auditMigration,
  '0001_audit_witness': auditWitnessMigration,
  '0001_audit_syslog': auditSyslogMigration,
  '0002_cloud': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('producer', 'text', (c) => c.notNull())
        .addColumn('upload_key', 'text', (c) => c.notNull())
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('instances_upload', ['producer', 'upload_key'])
        .execute();
      await db.schema
        .createTable('spent_nonces')
        .addColumn('nonce', 'text', (c) => c.primaryKey())
        .addColumn('ticket', 'text', (c) => c.notNull())
        .addColumn('spent_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('redemptions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('ticket', 'text', (c) => c.notNull())
        .addColumn('device', 'text', (c) => c.notNull())
        .addColumn('clinician', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('redemption_items')
        .addColumn('redemption', 'text', (c) => c.notNull().references('redemptions.id'))
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('image', 'text', (c) => c.notNull())
        .addColumn('slot', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('redemption_items_pk', ['redemption', 'position'])
        .execute();
    },
  },
  '0003_trace_basis': {
    // Redemption signs traces from what the upload read once, instead of re-reading every image.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('instances').addColumn('trace_basis', 'text').execute();
    },
  },
};

/**
 * A trace basis as the instances table keeps it: `<sealed bytes hex>.<seal signature hex>` and,
 * since protocol v2, `.<offset>:<word bytes>:<L>:<first bit>:<bits>`, where the trace slot lies in the
 * stored file, and `.<seal digest hex>` for a v2 image (rows written before have neither: those
 * images are stamped by reading them, and their seal digest is computed at redemption).
 */
export const basisToText = (b: TraceBasis): string => {
  const p = b.placement;
  const at = p ? `.${[p.offset, p.wordBytes, p.L, p.fromBit, p.bits].join(':')}` : '';
  const seal = p && b.sealDigest ? `.${toHex(b.sealDigest)}` : '';
  return `${toHex(b.sealedBytes)}.${toHex(b.sealSignature)}${at}${seal}`;
};

/** The placement field of a stored basis (`<offset>:<word bytes>:<L>:<first bit>:<bits>`). */
function placementOf(field: string | undefined): TracePlacement | undefined {
  const n = field?.split(':').map(Number);
  if (!n || n.length !== 5) return undefined;
  const [offset, wordBytes, L, fromBit, bits] = n as [number, number, number, number, number];
  return { offset, wordBytes, L, fromBit, bits };
}

export const basisFromText = (text: string): TraceBasis => {
  const [sealed = '', signature = '', at, seal] = text.split('.');
  const basis = { sealedBytes: fromHex(sealed), sealSignature: fromHex(signature) };
  const placement = placementOf(at);
  if (!placement) return basis;
  return {
    ...basis,
    placement,
    ...(seal && /^[0-9a-f]{64}$/.test(seal) ? { sealDigest: fromHex(seal) } : {}),
  };
};

/**
 * Only the placement of a stored basis, what retrieval stamps by: the sealed bytes and signature
 * before it are skipped, not decoded. Undefined for rows written before placements were kept.
 */
export const placementFromText = (text: string): TracePlacement | undefined => {
  const i = text.indexOf('.');
  const j = i < 0 ? -1 : text.indexOf('.', i + 1);
  if (j < 0) return undefined;
  const k = text.indexOf('.', j + 1);
  return placementOf(text.slice(j + 1, k < 0 ? undefined : k));
};
