/**
 * Outsourcing one instance: protect it (`docs/protection.md`), keep the protected bytes and the image
 * key wrapped under the key-encryption key in the outbox, upload to the cloud over mutual TLS, and
 * record `patient → study → series → instance (cloud id, wrapped key)`. Idempotent by the SHA-256 of
 * the source file; an interrupted upload is resent with the same protected bytes and key.
 */
import { randomBytes, toHex } from '../../core/bytes.ts';
import { wrapKey } from '../../core/crypto/aead.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { SigningKey } from '../../core/crypto/keys.ts';
import type { DataSet } from '../../core/dicom/dataset.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { ZtvError } from '../../core/errors.ts';
import { mtlsFetch, type TlsIdentity } from '../common/tls.ts';
import type { LiveTrust } from '../common/trust.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import { ProtectPool } from './protect-pool.ts';
import type { ProducerTables } from './schema.ts';

export interface OutsourcingDeps {
  readonly id: string;
  readonly database: Database<ProducerTables>;
  /** Protected instances waiting for the cloud's acknowledgement (outbox). */
  readonly outbox: BlobStore;
  readonly signer: SigningKey;
  readonly pseudonymKey: Uint8Array;
  /** AES-256-GCM key-encryption key for image keys at rest. */
  readonly kek: CryptoKey;
  readonly trust: LiveTrust;
  readonly audit: AuditStore;
  readonly cloud: {
    readonly id: string;
    readonly url: string;
    readonly tls: Omit<TlsIdentity, 'pki'>;
  };
  readonly now?: () => number;
  /** For the crash tests: called once the instance is in the outbox, before it goes to the cloud. */
  readonly beforeCloudUpload?: () => Promise<void>;
  /** Threads that protect instances (default: one per core; `protect-pool.ts`). */
  readonly protectThreads?: number;
}

/** The patient an instance is filed under at the producer: its Patient ID, or UNKNOWN without one. */
export const patientOf = (ds: DataSet): string => ds.text(T.PatientID) || 'UNKNOWN';

export interface OutsourceResult {
  readonly sopInstanceUid: string;
  readonly cloudId: string;
  readonly created: boolean;
}

/** The slice's position along z from Image Position (Patient) — 0 is a position, not a missing one. */
export function slicePosition(ipp: string | undefined): number | null {
  const z = ipp?.split('\\')[2]?.trim();
  if (z === undefined || z === '') return null;
  const n = Number(z);
  return Number.isFinite(n) ? n : null;
}

export class Producer {
  /** Protection runs here, off the event loop, on every core (`protect-pool.ts`). */
  readonly pool: ProtectPool;
  /** Instances being outsourced, by source digest: a second copy waits for the first. */
  private readonly inflight = new Map<string, Promise<OutsourceResult>>();

  constructor(readonly deps: OutsourcingDeps) {
    this.pool = new ProtectPool({
      signer: deps.signer,
      pseudonymKey: deps.pseudonymKey,
      ...(deps.protectThreads !== undefined ? { threads: deps.protectThreads } : {}),
    });
  }

  /** Stops the protect threads (the process is shutting down). */
  close(): Promise<void> {
    return this.pool.close();
  }

  private get db() {
    return this.deps.database.db;
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  /**
   * Protects one instance and stores it at the cloud; idempotent by the source's digest. The outbox
   * keeps the protected bytes and the wrapped key until the cloud acknowledges, so a crash on either
   * side is retried with the same bytes and key.
   */
  async outsource(source: Uint8Array): Promise<OutsourceResult> {
    const digest = toHex(sha256(source));
    // Callers outsource concurrently (one per protect thread): the same file twice at once is
    // protected and recorded once, the second answered as stored before.
    const running = this.inflight.get(digest);
    if (running) return { ...(await running), created: false };
    const run = this.outsourceOnce(source, digest);
    this.inflight.set(digest, run);
    try {
      return await run;
    } finally {
      this.inflight.delete(digest);
    }
  }

  private async outsourceOnce(source: Uint8Array, digest: string): Promise<OutsourceResult> {
    const done = await this.db
      .selectFrom('instances')
      .selectAll()
      .where('source_digest', '=', digest)
      .executeTakeFirst();
    // Sent before and stored: answered from the record, without parsing the file again.
    if (done?.status === 'done')
      return { sopInstanceUid: done.sop_uid, cloudId: done.cloud_id!, created: false };
    const parsed = parseDicom(source, 'the instance');
    const ds = parsed.dataset;
    const sop = ds.text(T.SOPInstanceUID) ?? digest;
    let row = done;
    let protectedBytes: Uint8Array;
    if (row && (await this.deps.outbox.has(row.upload_key))) {
      protectedBytes = await this.deps.outbox.get(row.upload_key);
    } else {
      const p = await this.pool.protect(source, { what: 'the instance' });
      protectedBytes = p.bytes;
      const uploadKey = toHex(randomBytes(32));
      await this.deps.outbox.put(uploadKey, protectedBytes);
      await this.recordHierarchy(ds);
      const values = {
        source_digest: digest,
        status: 'pending',
        cloud_id: null,
        upload_key: uploadKey,
        wrapped_key: await wrapKey(this.deps.kek, p.imageKey, digest),
        // protect's default: the pixels under K_p, releasable without the identity.
        pixel_key: 1,
        study_uid: ds.text(T.StudyInstanceUID) ?? `study-of-${digest}`,
        series_uid: ds.text(T.SeriesInstanceUID) ?? `series-of-${digest}`,
        sop_uid: sop,
        instance_number: ds.number(T.InstanceNumber) ?? 0,
        position: slicePosition(ds.text(T.ImagePositionPatient)),
        created_at: new Date(this.now()).toISOString(),
      };
      if (row)
        await this.db
          .updateTable('instances')
          .set(values)
          .where('source_digest', '=', digest)
          .execute();
      else await this.db.insertInto('instances').values(values).execute();
      row = { ...values };
    }
    await this.deps.beforeCloudUpload?.();
    const r = await mtlsFetch(
      `${this.deps.cloud.url}/instances/${row.upload_key}`,
      { ...this.deps.cloud.tls, pki: this.deps.trust.view() },
      {
        method: 'PUT',
        headers: { 'content-type': 'application/dicom' },
        body: protectedBytes,
      },
    ).catch((e: NodeJS.ErrnoException) => {
      // The protected bytes and the wrapped key stay in the outbox: sending again resumes here.
      throw new ZtvError(
        'bad-input',
        `the cloud could not be reached (${e.code ?? e.message}); the instance is kept and goes again on the next attempt`,
        // A sender may try again later (DIMSE answers A700, not an error of the instance).
        { transient: true },
      );
    });
    if (r.status !== 200)
      throw new ZtvError(
        'bad-input',
        `the cloud refused the instance: ${r.status} ${r.body.toString().slice(0, 200)}`,
        { transient: r.status >= 500 },
      );
    const { id } = JSON.parse(r.body.toString()) as { id: string };
    await this.db
      .updateTable('instances')
      .set({ status: 'done', cloud_id: id })
      .where('source_digest', '=', digest)
      .execute();
    await this.deps.outbox.delete(row.upload_key);
    await this.deps.audit.append({
      event: '110106',
      subtype: 'outsourcing',
      action: 'C',
      outcome: 0,
      actor: { id: this.deps.id },
      objects: [{ type: 'image', id }],
      details: { cloud: this.deps.cloud.id },
    });
    return { sopInstanceUid: sop, cloudId: id, created: true };
  }

  /**
   * The instance stored under this SOP Instance UID, if any: a DICOM sender that sends an instance
   * again (by any route, in any transfer syntax) is answered from the records.
   */
  async storedInstance(sopInstanceUid: string): Promise<OutsourceResult | undefined> {
    const row = await this.db
      .selectFrom('instances')
      .select(['sop_uid', 'cloud_id'])
      .where('sop_uid', '=', sopInstanceUid)
      .where('status', '=', 'done')
      .executeTakeFirst();
    return row?.cloud_id
      ? { sopInstanceUid: row.sop_uid, cloudId: row.cloud_id, created: false }
      : undefined;
  }

  private async recordHierarchy(ds: DataSet): Promise<void> {
    const patient = patientOf(ds);
    const study = ds.text(T.StudyInstanceUID) ?? 'unknown-study';
    const series = ds.text(T.SeriesInstanceUID) ?? 'unknown-series';
    await this.db
      .insertInto('patients')
      .values({
        id: patient,
        name: ds.text(T.PatientName) ?? '',
        birth_date: ds.text(T.PatientBirthDate) ?? '',
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    await this.db
      .insertInto('studies')
      .values({
        uid: study,
        patient_id: patient,
        description: ds.text(T.StudyDescription) ?? '',
        date: ds.text(T.StudyDate) ?? '',
        modality: ds.text(T.Modality) ?? '',
      })
      .onConflict((oc) => oc.column('uid').doNothing())
      .execute();
    await this.db
      .insertInto('series')
      .values({
        uid: series,
        study_uid: study,
        number: ds.number(T.SeriesNumber) ?? 0,
        description: ds.text(T.SeriesDescription) ?? '',
        modality: ds.text(T.Modality) ?? '',
      })
      .onConflict((oc) => oc.column('uid').doNothing())
      .execute();
  }
}
