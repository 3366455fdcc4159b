/**
 * The producer hospital: protects its instances and outsources them to the cloud (STOW-RS in, mutual
 * TLS out), keeping `patient → study → series → (ID_i, K_i)` with image keys wrapped under a
 * key-encryption key the database never sees; and answers consultations: it logs each request first,
 * checks the requester's hospital against the authority's current trust group, decides with its
 * policy, and issues the blind ticket — the cloud's part and the device's part.
 */
import type { FastifyInstance } from 'fastify';
import type { Kysely, Migration } from 'kysely';
import { concatBytes, fromBase64Url, randomBytes, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { boundaryOf, parseMultipart } from '../../core/dicom/multipart.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T } from '../../core/dicom/tags.ts';
import { isZtvError, ZtvError } from '../../core/errors.ts';
import { studyRef } from '../../core/audit/trail.ts';
import { OID } from '../../core/pki/oids.ts';
import { protect } from '../../core/protect/index.ts';
import type { SessionServer } from '../../core/session/protocol.ts';
import { issueTicket } from '../../core/ticket/ticket.ts';
import { createApp, HttpError } from '../common/http.ts';
import { checkSecret } from '../common/secrets.ts';
import { OperationError, sessionPlugin, type OperationContext } from '../common/session.ts';
import { mtlsFetch, type TlsIdentity } from '../common/tls.ts';
import type { LiveTrust } from '../common/trust.ts';
import {
  enforce,
  type AccessRequest,
  type DecisionRecord,
  type PolicyEngine,
} from '../policy/engine.ts';
import {
  auditMigration,
  auditWitnessMigration,
  type AuditStore,
  type AuditTables,
} from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import { producerAuditOperations } from './audit.ts';

export interface ProducerTables extends AuditTables {
  patients: { id: string; name: string; birth_date: string };
  studies: { uid: string; patient_id: string; description: string; date: string; modality: string };
  series: { uid: string; study_uid: string; number: number; description: string; modality: string };
  instances: {
    source_digest: string;
    status: string;
    cloud_id: string | null;
    upload_key: string;
    wrapped_key: string;
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
};

export interface ProducerDeps {
  readonly id: string;
  readonly database: Database<ProducerTables>;
  /** Protected instances waiting for the cloud's acknowledgement (outbox). */
  readonly outbox: BlobStore;
  readonly signer: SigningKey;
  readonly pseudonymKey: Uint8Array;
  /** AES-256-GCM key-encryption key for image keys at rest. */
  readonly kek: CryptoKey;
  readonly trust: LiveTrust;
  readonly policy: PolicyEngine;
  readonly domain: string;
  readonly audit: AuditStore;
  readonly sessions: SessionServer;
  readonly cloud: {
    readonly id: string;
    readonly url: string;
    readonly tls: Omit<TlsIdentity, 'pki'>;
  };
  readonly stowTokenHash: string;
  readonly ticketTtlMs?: number;
  readonly corsOrigins?: readonly string[];
  readonly logLevel?: string;
  readonly now?: () => number;
  /** For the crash tests: called once the instance is in the outbox, before it goes to the cloud. */
  readonly beforeCloudUpload?: () => Promise<void>;
}

// --- image keys at rest ----------------------------------------------------------------------

export async function wrapKey(kek: CryptoKey, key: Uint8Array, binding: string): Promise<string> {
  const iv = randomBytes(12);
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      {
        name: 'AES-GCM',
        iv: iv as Uint8Array<ArrayBuffer>,
        additionalData: utf8(binding) as Uint8Array<ArrayBuffer>,
      },
      kek,
      key as Uint8Array<ArrayBuffer>,
    ),
  );
  return toHex(concatBytes(iv, ct));
}

export async function unwrapKey(
  kek: CryptoKey,
  wrapped: string,
  binding: string,
): Promise<Uint8Array> {
  const b = Uint8Array.from(wrapped.match(/../g)!.map((h) => parseInt(h, 16)));
  return new Uint8Array(
    await crypto.subtle.decrypt(
      {
        name: 'AES-GCM',
        iv: b.subarray(0, 12) as Uint8Array<ArrayBuffer>,
        additionalData: utf8(binding) as Uint8Array<ArrayBuffer>,
      },
      kek,
      b.subarray(12) as Uint8Array<ArrayBuffer>,
    ),
  );
}

/** The slice's position along z from Image Position (Patient) — 0 is a position, not a missing one. */
export function slicePosition(ipp: string | undefined): number | null {
  const z = ipp?.split('\\')[2]?.trim();
  if (z === undefined || z === '') return null;
  const n = Number(z);
  return Number.isFinite(n) ? n : null;
}

// --- the service -------------------------------------------------------------------------------

export interface OutsourceResult {
  readonly sopInstanceUid: string;
  readonly cloudId: string;
  readonly created: boolean;
}

export class Producer {
  constructor(readonly deps: ProducerDeps) {}

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
      const p = await protect(source, {
        signer: this.deps.signer,
        pseudonymKey: this.deps.pseudonymKey,
        what: 'the instance',
      });
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
      );
    });
    if (r.status !== 200)
      throw new ZtvError(
        'bad-input',
        `the cloud refused the instance: ${r.status} ${r.body.toString().slice(0, 200)}`,
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

  private async recordHierarchy(ds: ReturnType<typeof parseDicom>['dataset']): Promise<void> {
    const patient = ds.text(T.PatientID) || 'UNKNOWN';
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
        number: ds.number(0x00200011) ?? 0,
        description: ds.text(T.SeriesDescription) ?? '',
        modality: ds.text(T.Modality) ?? '',
      })
      .onConflict((oc) => oc.column('uid').doNothing())
      .execute();
  }
}

/** Private creator of the attributes the producer adds to its STOW-RS answers. */
export const PRIVATE_CREATOR = 'ZTV 1';

interface ConsultBody {
  readonly patient: string;
  readonly study?: string;
  readonly purpose: string;
  readonly emergencyJustification?: string;
  readonly roleAssignments?: string[];
  readonly delegations?: string[][];
}

const statements = {
  roleAssignments: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 8192 } },
  delegations: {
    type: 'array',
    maxItems: 4,
    items: { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 8192 } },
  },
} as const;

export async function buildProducer(
  deps: ProducerDeps,
): Promise<{ app: FastifyInstance; producer: Producer }> {
  const producer = new Producer(deps);
  const db = deps.database.db;
  const now = () => deps.now?.() ?? Date.now();
  const audit = deps.audit;
  const app = createApp({
    name: 'producer',
    bodyLimit: 512 * 1024 * 1024,
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
  });
  const origins = new Set(deps.corsOrigins ?? []);
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (origin && origins.has(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'origin');
      reply.header('access-control-allow-headers', 'content-type');
      reply.header('access-control-allow-methods', 'POST');
    }
    if (req.method === 'OPTIONS') return reply.code(204).send();
  });
  app.options('/*', async (_req, reply) => reply.code(204).send());

  // STOW-RS (PS3.18 10.5) for the hospital's own systems.
  app.addContentTypeParser(/^multipart\/related/i, { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );
  app.post('/studies', async (req, reply) => {
    const token = /^Bearer (\S{16,256})$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !(await checkSecret(token, deps.stowTokenHash)))
      throw new HttpError(401, 'unauthorised', 'a hospital integration token is required');
    const boundary = boundaryOf(req.headers['content-type']);
    const referenced: { sop: string; id: string; created: boolean }[] = [];
    const failed: { index: number; reason: string }[] = [];
    let index = 0;
    for await (const part of parseMultipart([new Uint8Array(req.body as Buffer)], boundary)) {
      index++;
      try {
        const r = await producer.outsource(part.body);
        referenced.push({ sop: r.sopInstanceUid, id: r.cloudId, created: r.created });
      } catch (e) {
        if (!isZtvError(e)) throw e;
        failed.push({ index, reason: e.message });
      }
    }
    // A PS3.18 STOW response in JSON: referenced instances, and the failed ones with their reason.
    const status = failed.length === 0 ? 200 : referenced.length === 0 ? 409 : 202;
    return reply.code(status).send({
      '00081199': {
        vr: 'SQ',
        Value: referenced.map((r) => ({
          '00081155': { vr: 'UI', Value: [r.sop] },
          '00081190': { vr: 'UR', Value: [`cloud:${r.id}`] },
        })),
      },
      // Failure Reason C000 (cannot understand) with the reason in words: a short Error Comment
      // (LO holds 64 characters) and the whole sentence in a private attribute of block ZTV.
      '00081198': {
        vr: 'SQ',
        Value: failed.map((f) => ({
          '00081197': { vr: 'US', Value: [0xc000] },
          '00000902': { vr: 'LO', Value: [`part ${f.index}: ${f.reason}`.slice(0, 64)] },
          '00090010': { vr: 'LO', Value: [PRIVATE_CREATOR] },
          '00091001': { vr: 'LT', Value: [`part ${f.index}: ${f.reason}`] },
        })),
      },
    });
  });

  /** The request as the policy sees it, from the session's device certificate and the body. */
  const accessRequest = (
    ctx: OperationContext,
    activity: string,
    body: ConsultBody,
    resource: AccessRequest['resource'],
  ): AccessRequest => ({
    principal: {
      id: ctx.client.attributes.clinicianId ?? '',
      organization: ctx.client.attributes.hospital ?? '',
      roles: [ctx.client.attributes.role ?? ''],
    },
    activity,
    resource,
    context: {
      purpose: body.purpose,
      time: new Date(now()),
      ...(body.emergencyJustification !== undefined
        ? { emergencyJustification: body.emergencyJustification }
        : {}),
    },
    ...(body.roleAssignments ? { roleAssignments: body.roleAssignments } : {}),
    ...(body.delegations ? { delegations: body.delegations } : {}),
  });

  const actorOf = (ctx: OperationContext) => ({
    id: ctx.client.attributes.clinicianId ?? 'unknown',
    role: ctx.client.attributes.role,
    organisation: ctx.client.attributes.hospital,
    device: ctx.client.thumbprint,
  });

  /** The hospital of the device must be in the authority's current trust group. */
  const checkHospital = async (ctx: OperationContext) => {
    const pki = await deps.trust.fresh();
    const member = pki.trustGroup.members.find((m) => m.id === ctx.client.attributes.hospital);
    if (!member)
      throw new OperationError(
        403,
        'not-trusted',
        `hospital ${ctx.client.attributes.hospital} is not in trust group version ${pki.trustGroup.version}`,
      );
  };

  const pseudo = (patient: string): string =>
    toHex(sha256(deps.pseudonymKey, utf8(`patient\0${patient}`))).slice(0, 32);

  /**
   * A decision as the audit log keeps it: the policy saw the resource by patient id and Study
   * Instance UID; the log names them by pseudonym and study reference, wherever they occur.
   */
  const loggable = (d: DecisionRecord, names: { patient?: string; study?: string }) => {
    let text = JSON.stringify(d);
    const swap = (raw: string | undefined, ref: string) => {
      if (raw && raw.length >= 3) text = text.split(JSON.stringify(raw).slice(1, -1)).join(ref);
    };
    swap(names.study, `study-ref:${names.study ? studyRef(names.study) : ''}`);
    swap(names.patient, `patient-ref:${names.patient ? pseudo(names.patient) : ''}`);
    text = text.replace(/"resource":"study:study-ref:/g, '"resource":"study-ref:');
    text = text.replace(/"resource":"patient:patient-ref:/g, '"resource":"patient-ref:');
    return JSON.parse(text) as DecisionRecord;
  };

  const logDecision = (
    ctx: OperationContext,
    d: DecisionRecord,
    objects: { type: 'patient' | 'study' | 'ticket'; id: string }[],
    names: { patient?: string; study?: string } = {},
  ) =>
    audit.append({
      event: '110112',
      subtype: 'policy-decision',
      action: 'R',
      outcome: d.decision === 'allow' ? 0 : 4,
      actor: actorOf(ctx),
      objects,
      details: { decision: loggable(d, names) },
    });

  const search = async (body: ConsultBody, ctx: OperationContext) => {
    await checkHospital(ctx);
    await audit.append({
      event: '110112',
      subtype: 'request-logged',
      action: 'R',
      outcome: 0,
      actor: actorOf(ctx),
      objects: [],
      details: { operation: 'search', purpose: body.purpose },
    });
    const d = await deps.policy.decide(
      deps.domain,
      accessRequest(ctx, 'search', body, { kind: 'patient-list' }),
    );
    const e = await enforce(d, { 'log-request': async () => void (await logDecision(ctx, d, [])) });
    if (e.decision.decision !== 'allow') {
      if (d.decision === 'allow') await logDecision(ctx, e.decision, []);
      else await logDecision(ctx, d, []);
      throw new OperationError(
        403,
        'denied',
        `search denied: ${[...e.decision.errors, ...e.decision.rules].join('; ') || 'no rule permits it'}`,
      );
    }
    // Only the studies this clinician could open under the policy are listed.
    const studies = await db
      .selectFrom('studies')
      .innerJoin('patients', 'patients.id', 'studies.patient_id')
      .select([
        'studies.uid',
        'studies.description',
        'studies.date',
        'studies.modality',
        'patients.id as patient',
        'patients.name',
        'patients.birth_date',
      ])
      .orderBy('patients.id')
      .execute();
    const visible = [];
    // Each study is listed only if the policy would let this clinician consult it; those decisions
    // are logged too (one record, studies pseudonymous), with the rules that made each.
    const filtered: { study: string; decision: string; rules: readonly string[] }[] = [];
    for (const s of studies) {
      const consult = await deps.policy.decide(
        deps.domain,
        accessRequest(
          ctx,
          'consult',
          { ...body, emergencyJustification: undefined } as ConsultBody,
          { kind: 'study', patient: s.patient, study: s.uid },
        ),
      );
      filtered.push({
        study: studyRef(s.uid),
        decision: consult.decision,
        rules: consult.rules,
      });
      if (consult.decision !== 'allow') continue;
      const series = await db
        .selectFrom('series')
        .selectAll()
        .where('study_uid', '=', s.uid)
        .orderBy('number')
        .execute();
      const counts = await db
        .selectFrom('instances')
        .select(['series_uid'])
        .where('study_uid', '=', s.uid)
        .where('status', '=', 'done')
        .execute();
      visible.push({
        patient: { id: s.patient, name: s.name, birthDate: s.birth_date },
        study: { uid: s.uid, description: s.description, date: s.date, modality: s.modality },
        series: series.map((x) => ({
          uid: x.uid,
          number: x.number,
          description: x.description,
          modality: x.modality,
          instances: counts.filter((c) => c.series_uid === x.uid).length,
        })),
      });
    }
    await audit.append({
      event: '110112',
      subtype: 'search-filter',
      action: 'R',
      outcome: 0,
      actor: actorOf(ctx),
      objects: [],
      details: { decisions: filtered, listed: visible.length },
    });
    return { studies: visible };
  };

  const consult = async (body: ConsultBody, ctx: OperationContext) => {
    // Pre-obligation first: the request is logged before anything is decided.
    await audit.append({
      event: '110112',
      subtype: 'request-logged',
      action: 'R',
      outcome: 0,
      actor: actorOf(ctx),
      objects: [{ type: 'patient', id: pseudo(body.patient) }],
      details: {
        operation: 'consult',
        purpose: body.purpose,
        emergency: body.emergencyJustification !== undefined,
      },
    });
    await checkHospital(ctx);
    const study = body.study
      ? await db
          .selectFrom('studies')
          .selectAll()
          .where('uid', '=', body.study)
          .where('patient_id', '=', body.patient)
          .executeTakeFirst()
      : await db
          .selectFrom('studies')
          .selectAll()
          .where('patient_id', '=', body.patient)
          .orderBy('date', 'desc')
          .executeTakeFirst();
    if (!study) throw new OperationError(404, 'unknown-study', 'no such study for this patient');
    const d = await deps.policy.decide(
      deps.domain,
      accessRequest(ctx, 'consult', body, {
        kind: 'study',
        patient: body.patient,
        study: study.uid,
      }),
    );
    const objects = [
      { type: 'patient' as const, id: pseudo(body.patient) },
      { type: 'study' as const, id: studyRef(study.uid) },
    ];
    const names = { patient: body.patient, study: study.uid };
    const e = await enforce(d, {
      'log-request': async () => void (await logDecision(ctx, d, objects, names)),
    });
    if (e.decision.decision !== 'allow') {
      await logDecision(ctx, e.decision, objects, names);
      throw new OperationError(
        403,
        'denied',
        `consultation denied: ${[...e.decision.errors, ...e.decision.refusedStatements, ...e.decision.rules.map((r) => `rule ${r}`)].join('; ') || 'no rule permits it'}`,
      );
    }
    const rows = await db
      .selectFrom('instances')
      .selectAll()
      .where('study_uid', '=', study.uid)
      .where('status', '=', 'done')
      .orderBy('series_uid')
      .orderBy('instance_number')
      .execute();
    if (rows.length === 0)
      throw new OperationError(404, 'no-images', 'this study has no outsourced images yet');
    const pki = deps.trust.view();
    const cloudCert = pki.organisations.find((c) => c.subject.includes(`OU=cloud`));
    const cloudEnc = cloudCert?.getExtension(OID.encryptionKeyExtension);
    if (!cloudEnc)
      throw new OperationError(
        503,
        'no-cloud',
        'the cloud has no encryption key in the federation',
      );
    const cloudKey = await crypto.subtle.importKey(
      'spki',
      new Uint8Array(cloudEnc.value),
      { name: 'ECDH', namedCurve: 'P-256' },
      true,
      [],
    );
    const deviceSpki = fromBase64Url(ctx.client.attributes.encryptionKey ?? '');
    const deviceKey = await crypto.subtle
      .importKey(
        'spki',
        deviceSpki as Uint8Array<ArrayBuffer>,
        { name: 'ECDH', namedCurve: 'P-256' },
        true,
        [],
      )
      .catch(() => {
        throw new OperationError(
          400,
          'no-device-key',
          'the device certificate carries no encryption key',
        );
      });
    const trace = randomBytes(32);
    const images = [];
    for (const r of rows)
      images.push({
        id: r.cloud_id!,
        key: await unwrapKey(deps.kek, r.wrapped_key, r.source_digest),
        trace,
      });
    const ticket = await issueTicket({
      producer: deps.signer,
      producerId: deps.id,
      cloudId: deps.cloud.id,
      cloudEncryptionKey: cloudKey,
      deviceId: ctx.client.thumbprint,
      deviceEncryptionKey: deviceKey,
      images,
      ttlMs: deps.ticketTtlMs ?? 15 * 60_000,
      purpose: body.purpose,
      now: now(),
    });
    for (const im of images) im.key.fill(0);
    const pending = e.pending.includes('break-glass-review');
    await db
      .insertInto('tickets')
      .values({
        tid: ticket.tid,
        clinician: ctx.client.attributes.clinicianId ?? '',
        device: ctx.client.thumbprint,
        hospital: ctx.client.attributes.hospital ?? '',
        purpose: body.purpose,
        emergency: body.emergencyJustification !== undefined ? 1 : 0,
        justification: body.emergencyJustification ?? null,
        patient_id: body.patient,
        study_uid: study.uid,
        trace: toHex(trace),
        images: JSON.stringify(rows.map((r) => r.cloud_id)),
        decision: JSON.stringify(e.decision),
        issued_at: new Date(now()).toISOString(),
        expires_at: ticket.expiresAt,
        review: pending ? 'pending' : 'none',
        reviewer: null,
        reviewed_at: null,
      })
      .execute();
    await audit.append({
      event: '110103',
      subtype: pending ? 'ticket-issued-break-glass' : 'ticket-issued',
      action: 'C',
      outcome: 0,
      actor: actorOf(ctx),
      objects: [{ type: 'ticket', id: ticket.tid }, ...objects],
      details: {
        images: rows.length,
        rules: e.decision.rules,
        obligationsPending: e.pending,
        expiresAt: ticket.expiresAt,
      },
    });
    const series = await db
      .selectFrom('series')
      .selectAll()
      .where('study_uid', '=', study.uid)
      .orderBy('number')
      .execute();
    return {
      ticket,
      trace: toHex(trace),
      study: {
        uid: study.uid,
        description: study.description,
        date: study.date,
        modality: study.modality,
      },
      series: series.map((s) => ({
        uid: s.uid,
        number: s.number,
        description: s.description,
        modality: s.modality,
        instances: rows
          .filter((r) => r.series_uid === s.uid)
          .map((r) => ({ id: r.cloud_id!, number: r.instance_number, position: r.position })),
      })),
      decision: {
        rules: e.decision.rules,
        obligations: e.decision.obligations.map((o) => `${o.id}:${o.timing}`),
      },
    };
  };

  const auditOps = producerAuditOperations({
    audit,
    policy: deps.policy,
    domain: deps.domain,
    db,
    pseudonymKey: deps.pseudonymKey,
    now,
  });
  await app.register(sessionPlugin, {
    server: deps.sessions,
    streams: auditOps.streams,
    operations: {
      ...auditOps.operations,
      search: {
        schema: {
          type: 'object',
          required: ['purpose'],
          additionalProperties: false,
          properties: {
            purpose: { type: 'string', pattern: '^[a-z][a-z-]{0,40}$' },
            ...statements,
          },
        },
        handler: search as never,
      },
      consult: {
        schema: {
          type: 'object',
          required: ['patient', 'purpose'],
          additionalProperties: false,
          properties: {
            patient: { type: 'string', minLength: 1, maxLength: 64 },
            study: { type: 'string', pattern: '^[0-9.]{1,64}$' },
            purpose: { type: 'string', pattern: '^[a-z][a-z-]{0,40}$' },
            emergencyJustification: { type: 'string', maxLength: 2000 },
            ...statements,
          },
        },
        handler: consult as never,
      },
    },
  });
  return { app, producer };
}
