/**
 * Consultation, the producer hospital's side: `search`, `qido` (QIDO-RS study and series search
 * among the same studies) and `consult` through clinicians' sessions.
 * Each request is logged first (pre-obligation `log-request`), the device's hospital is checked
 * against the authority's current trust group, the policy decides, and `consult` issues the blind
 * ticket — the cloud's part (image ids, traces) and the device's part (image keys, unwrapped here
 * from the KEK and zeroed once sealed).
 */
import type { FastifyInstance } from 'fastify';
import { fromBase64Url, randomBytes, toHex } from '../../core/bytes.ts';
import { studyRef } from '../../core/audit/trail.ts';
import { unwrapKey } from '../../core/crypto/aead.ts';
import { importEcdhPublicKey } from '../../core/crypto/ecdh.ts';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { patientPseudonym } from '../../core/crypto/pseudonym.ts';
import type { BodyOf } from '../../core/operations/contract.ts';
import { consult, search, type SearchAnswer } from '../../core/operations/consultation.ts';
import { parseQido, qido, qidoMatches, type QidoQuery } from '../../core/operations/qido.ts';
import { allowedPurposesSentence } from '../../core/policy/purposes.ts';
import { OID } from '../../core/pki/oids.ts';
import { pixelKey } from '../../core/protect/cipher.ts';
import { issueTicket } from '../../core/ticket/ticket.ts';
import { OperationError, type OperationContext } from '../common/session.ts';
import type { LiveTrust } from '../common/trust.ts';
import {
  enforce,
  type AccessRequest,
  type DecisionRecord,
  type PolicyEngine,
} from '../policy/engine.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Database } from '../storage/db.ts';
import type { ProducerTables } from './schema.ts';

export interface ConsultationOptions {
  readonly id: string;
  readonly database: Database<ProducerTables>;
  readonly signer: SigningKey;
  readonly pseudonymKey: Uint8Array;
  /** AES-256-GCM key-encryption key of the image keys at rest. */
  readonly kek: CryptoKey;
  readonly trust: LiveTrust;
  readonly policy: PolicyEngine;
  readonly domain: string;
  readonly audit: AuditStore;
  readonly cloud: { readonly id: string };
  readonly ticketTtlMs?: number;
  readonly now?: () => number;
}

/** What an emergency purpose is tried with when a refusal lists the purposes that would be allowed. */
const STAND_IN_JUSTIFICATION =
  'Stand-in emergency justification in typed words, only to list the purposes this clinician may declare.';

/** What `search` and `consult` share: a purpose and the clinician's signed statements. */
type ConsultLike = BodyOf<typeof consult> | BodyOf<typeof search> | BodyOf<typeof qido>;

/** The clinician as audit records name them: from the device certificate of the session. */
export const actorOf = (ctx: OperationContext) => ({
  id: ctx.client.attributes.clinicianId ?? 'unknown',
  role: ctx.client.attributes.role,
  organisation: ctx.client.attributes.hospital,
  device: ctx.client.thumbprint,
});

export async function consultationPlugin(
  app: FastifyInstance,
  deps: ConsultationOptions,
): Promise<void> {
  const db = deps.database.db;
  const now = () => deps.now?.() ?? Date.now();
  const audit = deps.audit;
  const pseudo = (patient: string): string => patientPseudonym(deps.pseudonymKey, patient);

  /** The request as the policy sees it, from the session's device certificate and the body. */
  const accessRequest = (
    ctx: OperationContext,
    activity: string,
    body: ConsultLike,
    resource: AccessRequest['resource'],
    emergencyJustification?: string,
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
      ...(emergencyJustification !== undefined ? { emergencyJustification } : {}),
    },
    ...(body.roleAssignments ? { roleAssignments: [...body.roleAssignments] } : {}),
    ...(body.delegations ? { delegations: body.delegations.map((d) => [...d]) } : {}),
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

  /** The pre-obligation `log-request`: the request in the log before anything is decided. */
  const logRequest = (
    ctx: OperationContext,
    objects: { type: 'patient'; id: string }[],
    details: Record<string, unknown>,
  ) =>
    audit.append({
      event: '110112',
      subtype: 'request-logged',
      action: 'R',
      outcome: 0,
      actor: actorOf(ctx),
      objects,
      details,
    });

  /**
   * The declared purpose at the edge: the contract admits the shape of a PurposeOfUse code, this the
   * domain's closed vocabulary. Another code is refused (400) as a body outside the schema is — a
   * security alert in the log, and nothing requested or decided.
   */
  const vocabulary = [...deps.policy.purposes(deps.domain).keys()];
  const knownPurpose = async (ctx: OperationContext, purpose: string) => {
    if (vocabulary.includes(purpose)) return;
    const message = `the purpose of use ${purpose} is not in the policy's vocabulary (${vocabulary.join(', ')})`;
    await audit.append({
      event: '110113',
      subtype: 'session-refused',
      action: 'E',
      outcome: 8,
      actor: actorOf(ctx),
      objects: [],
      details: { reason: 'bad-request', message },
    });
    throw new OperationError(400, 'bad-request', message);
  };

  /**
   * After a refusal, the purposes of the vocabulary for which the policy would let this clinician
   * consult this study, so that the refusal says what may be asked for instead. An emergency purpose
   * is tried with a stand-in justification in words (what it means: allowed once justified — the
   * viewer asks for one anyway). Hypothetical decisions: none is logged, none issues anything.
   */
  const allowedPurposes = async (
    ctx: OperationContext,
    body: BodyOf<typeof consult>,
    study: string,
  ): Promise<string[]> => {
    const allowed: string[] = [];
    for (const [code, def] of deps.policy.purposes(deps.domain)) {
      const justification = def.emergency ? STAND_IN_JUSTIFICATION : undefined;
      const d = await deps.policy.decide(
        deps.domain,
        accessRequest(
          ctx,
          'consult',
          { ...body, purpose: code },
          { kind: 'study', patient: body.patient, study },
          justification,
        ),
      );
      if (d.decision === 'allow') allowed.push(code);
    }
    return allowed;
  };

  /**
   * The studies this clinician could consult under the policy, each with its series: what `search`
   * lists and what `qido` matches among. The request is logged and decided (`search` on the
   * patient list) first; then every study's decision, logged in one record (studies pseudonymous).
   */
  const visibleStudies = async (
    body: ConsultLike,
    ctx: OperationContext,
    logged: Record<string, unknown>,
  ): Promise<SearchAnswer['studies'][number][]> => {
    await knownPurpose(ctx, body.purpose);
    await checkHospital(ctx);
    await logRequest(ctx, [], { ...logged, purpose: body.purpose });
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
    const visible: SearchAnswer['studies'][number][] = [];
    // Each study is listed only if the policy would let this clinician consult it; those decisions
    // are logged too (one record, studies pseudonymous), with the rules that made each.
    const filtered: { study: string; decision: string; rules: readonly string[] }[] = [];
    for (const s of studies) {
      const decision = await deps.policy.decide(
        deps.domain,
        accessRequest(ctx, 'consult', body, { kind: 'study', patient: s.patient, study: s.uid }),
      );
      filtered.push({ study: studyRef(s.uid), decision: decision.decision, rules: decision.rules });
      if (decision.decision !== 'allow') continue;
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
    return visible;
  };

  app.sessionOperations.handle(search, async (body, ctx) => ({
    studies: await visibleStudies(body, ctx, { operation: 'search' }),
  }));

  // QIDO-RS: the same listing, matched against the query. The query is logged by the keys it uses
  // (and its dates and modalities), never by the patient ID or name it was typed with.
  app.sessionOperations.handle(qido, async (body, ctx) => {
    let q: QidoQuery;
    try {
      q = parseQido(body.resource);
    } catch (e) {
      throw new OperationError(400, 'bad-query', (e as Error).message);
    }
    const visible = await visibleStudies(body, ctx, {
      operation: 'qido',
      level: q.level,
      matching: Object.keys(q.match),
      ...(q.match.StudyDate ? { studyDate: q.match.StudyDate } : {}),
      ...(q.match.Modality ? { modality: q.match.Modality } : {}),
      ...(q.match.ModalitiesInStudy ? { modalities: q.match.ModalitiesInStudy } : {}),
    });
    return { matches: qidoMatches(visible, q) };
  });

  app.sessionOperations.handle(consult, async (body, ctx) => {
    await knownPurpose(ctx, body.purpose);
    // Pre-obligation first: the request is logged before anything is decided.
    await logRequest(ctx, [{ type: 'patient', id: pseudo(body.patient) }], {
      operation: 'consult',
      purpose: body.purpose,
      emergency: body.emergencyJustification !== undefined,
      // Kept whatever follows: a refused break-the-glass request keeps its justification too.
      ...(body.emergencyJustification !== undefined
        ? { justification: body.emergencyJustification }
        : {}),
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
      accessRequest(
        ctx,
        'consult',
        body,
        { kind: 'study', patient: body.patient, study: study.uid },
        body.emergencyJustification,
      ),
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
      const allowed = await allowedPurposes(ctx, body, study.uid);
      throw new OperationError(
        403,
        'denied',
        `consultation denied: ${[...e.decision.errors, ...e.decision.refusedStatements, ...e.decision.rules.map((r) => `rule ${r}`)].join('; ') || 'no rule permits it'}; ${allowedPurposesSentence(allowed)}`,
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
    const cloudKey = await importEcdhPublicKey(new Uint8Array(cloudEnc.value));
    const deviceKey = await importEcdhPublicKey(
      fromBase64Url(ctx.client.attributes.encryptionKey ?? ''),
    ).catch(() => {
      throw new OperationError(
        400,
        'no-device-key',
        'the device certificate carries no encryption key',
      );
    });
    // Disclosure bound to purpose: for a purpose the policy marks de-identified (research), the
    // ticket carries each image's pixel key K_p, never K_i — the identifying attributes stay sealed
    // whatever the viewer does. Images protected before K_p existed cannot be released so.
    const identity = deps.policy.purposes(deps.domain).get(body.purpose)?.identity ?? false;
    const unsplit = identity ? 0 : rows.filter((r) => r.pixel_key !== 1).length;
    if (unsplit > 0) {
      await audit.append({
        event: '110103',
        subtype: 'ticket-refused',
        action: 'C',
        outcome: 4,
        actor: actorOf(ctx),
        objects,
        details: { reason: 'identity-bound', purpose: body.purpose, images: unsplit },
      });
      throw new OperationError(
        409,
        'identity-bound',
        `${unsplit} of the ${rows.length} images of this study were protected before their pixels had a key of their own: they cannot be released without the patient's identity, which the purpose ${body.purpose} does not allow`,
      );
    }
    const trace = randomBytes(32);
    const images = [];
    for (const r of rows) {
      const key = await unwrapKey(deps.kek, r.wrapped_key, r.source_digest);
      images.push({ id: r.cloud_id!, key: identity ? key : pixelKey(key), trace });
      if (!identity) key.fill(0);
    }
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
        disclosure: identity ? 'identified' : 'pseudonymised',
      },
    });
    const series = await db
      .selectFrom('series')
      .selectAll()
      .where('study_uid', '=', study.uid)
      .orderBy('number')
      .execute();
    // Without identity, the answer names the study and its series as the audit trail does (by
    // reference, not by their original UIDs) and withholds what the Basic Profile removes from the
    // header the images open with: descriptions and dates.
    const ref = (uid: string) => (identity ? uid : studyRef(uid));
    const told = (text: string) => (identity ? text : '');
    return {
      ticket,
      trace: toHex(trace),
      study: {
        uid: ref(study.uid),
        description: told(study.description),
        date: told(study.date),
        modality: study.modality,
      },
      series: series.map((s) => ({
        uid: ref(s.uid),
        number: s.number,
        description: told(s.description),
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
  });
}
