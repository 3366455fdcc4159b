/**
 * The cloud provider: stores protected instances uploaded by certified producers (mutual TLS) and
 * serves them to clinicians who redeem a blind ticket. It never holds a key or plaintext: it checks the
 * producer's signature on the ticket, decrypts its own part (image ids, traces, nonce), spends the
 * nonce once across replicas (database), decides with the policy, inserts each trace with its own
 * signature — the obligation before any release — logs, and streams the traced instances as
 * multipart/related through the clinician's session. Every refused ticket is a logged security alert.
 */
import type { ServerOptions as HttpsOptions } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Kysely, Migration } from 'kysely';
import type { TLSSocket } from 'node:tls';
import { fromHex, randomBytes, toHex } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { keyIdOf, type SigningKey } from '../../core/crypto/keys.ts';
import { isZtvError } from '../../core/errors.ts';
import { OID } from '../../core/pki/oids.ts';
import {
  inspectProtected,
  signTraceBasis,
  traceBasis,
  writeTraceSlot,
  type TraceBasis,
} from '../../core/protect/index.ts';
import type { SessionServer } from '../../core/session/protocol.ts';
import { ticketProducerResolver } from '../../core/ticket/producer.ts';
import { openCloudPart, type CloudClaims } from '../../core/ticket/ticket.ts';
import { createApp, HttpError } from '../common/http.ts';
import { OperationError, sessionPlugin, type OperationContext } from '../common/session.ts';
import { checkPeer } from '../common/tls.ts';
import type { Capture } from '../common/capture.ts';
import type { LiveTrust } from '../common/trust.ts';
import { enforce, type PolicyEngine } from '../policy/engine.ts';
import type { AuditEntry, AuditRecord } from '../../core/audit/record.ts';
import {
  auditMigration,
  auditWitnessMigration,
  type AuditStore,
  type AuditTables,
} from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import { cloudAuditOperations } from './audit.ts';

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

export interface CloudDeps {
  readonly id: string;
  readonly database: Database<CloudTables>;
  readonly blobs: BlobStore;
  readonly signer: SigningKey;
  /** The cloud's ECDH private key: what the cloud part of tickets is encrypted to. */
  readonly decryptionKey: CryptoKey;
  readonly trust: LiveTrust;
  readonly policy: PolicyEngine;
  readonly audit: AuditStore;
  readonly sessions: SessionServer;
  readonly corsOrigins?: readonly string[];
  readonly logLevel?: string;
  readonly now?: () => number;
  /** For the crash tests: called between storing the blob and committing the row. */
  readonly afterBlobWrite?: () => Promise<void>;
  /** For the crash tests: called once the traces are signed, before the redemption commits. */
  readonly beforeRedemptionCommit?: () => Promise<void>;
  /** Sees every request body and opened operation (confidentiality audits; off by default). */
  readonly capture?: Capture;
  /** Mutual TLS server options of the internal (producer-facing) listener. */
  readonly https?: HttpsOptions;
}

const BOUNDARY_BYTES = 12;

/** A trace basis as the instances table keeps it: `<sealed bytes hex>.<seal signature hex>`. */
const basisToText = (b: TraceBasis): string => `${toHex(b.sealedBytes)}.${toHex(b.sealSignature)}`;
const basisFromText = (text: string): TraceBasis => {
  const [sealed = '', signature = ''] = text.split('.');
  return { sealedBytes: fromHex(sealed), sealSignature: fromHex(signature) };
};

export async function buildCloud(
  deps: CloudDeps,
): Promise<{ internal: FastifyInstance; public: FastifyInstance }> {
  const db = deps.database.db;
  const now = deps.now ?? Date.now;
  const audit = deps.audit;

  const alert = (
    subtype: string,
    actor: { id: string; device?: string },
    details: Record<string, unknown>,
  ) =>
    audit.append({
      event: '110113',
      subtype,
      action: 'E',
      outcome: 8,
      actor,
      objects: [],
      details,
    });

  // --- internal: producers upload over mutual TLS -----------------------------------------------
  const internal = createApp({
    name: 'cloud-internal',
    bodyLimit: 256 * 1024 * 1024,
    ...(deps.logLevel ? { logLevel: deps.logLevel } : {}),
    ...(deps.https ? { https: deps.https } : {}),
  });
  deps.capture?.attach(internal, 'internal');
  internal.addContentTypeParser('application/dicom', { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );

  internal.put(
    '/instances/:key',
    {
      schema: {
        params: {
          type: 'object',
          required: ['key'],
          properties: { key: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
        },
      },
    },
    async (req) => {
      const peer = await checkPeer(
        req.raw.socket as TLSSocket,
        await deps.trust.fresh(),
        'tls-client',
        ['producer'],
      );
      if (!peer.ok) {
        await alert('upload-refused', { id: 'unknown' }, { reason: peer.reason });
        throw new HttpError(403, 'forbidden', peer.reason);
      }
      const { key } = req.params as { key: string };
      const body = req.body as Buffer | undefined;
      if (!body || body.length === 0)
        throw new HttpError(400, 'bad-request', 'send the protected instance as application/dicom');
      const bytes = new Uint8Array(body.buffer, body.byteOffset, body.length);
      const digest = toHex(sha256(bytes));
      const existing = await db
        .selectFrom('instances')
        .selectAll()
        .where('producer', '=', peer.peer.memberId)
        .where('upload_key', '=', key)
        .executeTakeFirst();
      if (existing) {
        if (existing.digest !== digest)
          throw new HttpError(409, 'conflict', 'this upload key already names another instance');
        return { id: existing.id, created: false };
      }
      // Only protected instances, sealed by the producer that uploads them.
      const report = (() => {
        try {
          return inspectProtected(bytes, 'the upload');
        } catch (e) {
          if (isZtvError(e)) throw new HttpError(400, 'not-protected', e.message);
          throw e;
        }
      })();
      const sealer = report.seal?.signerKeyId;
      if (
        !report.intact ||
        sealer !== toHex(keyIdOf(new Uint8Array(peer.peer.cert.publicKey.rawData)))
      )
        throw new HttpError(
          400,
          'not-protected',
          'the instance is not intact or not sealed by the uploading producer',
        );
      const basis = traceBasis(bytes, 'the upload');
      const id = crypto.randomUUID();
      await deps.blobs.put(id, bytes); // blob first …
      await deps.afterBlobWrite?.();
      await db // … row last: a crash in between leaves an orphan blob, never a row without its blob
        .insertInto('instances')
        .values({
          id,
          producer: peer.peer.memberId,
          upload_key: key,
          digest,
          size: bytes.length,
          created_at: new Date(now()).toISOString(),
          trace_basis: basisToText(basis),
        })
        .execute();
      await audit.append({
        event: '110107',
        subtype: 'outsourcing',
        action: 'C',
        outcome: 0,
        actor: { id: peer.peer.memberId, organisation: peer.peer.memberId },
        objects: [{ type: 'image', id }],
        details: { size: bytes.length },
      });
      return { id, created: true };
    },
  );

  // --- public: clinicians' devices, through sessions --------------------------------------------
  const pub = createApp({ name: 'cloud', ...(deps.logLevel ? { logLevel: deps.logLevel } : {}) });
  deps.capture?.attach(pub, 'public');
  const origins = new Set(deps.corsOrigins ?? []);
  pub.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (origin && origins.has(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'origin');
      reply.header('access-control-allow-headers', 'content-type');
      reply.header('access-control-allow-methods', 'POST');
    }
    if (req.method === 'OPTIONS') return reply.code(204).send();
  });
  pub.options('/*', async (_req, reply) => reply.code(204).send());
  // The same checks as the clinician's side; a refusal's reason becomes the 403 below.
  const resolveProducer = ticketProducerResolver(() => deps.trust.fresh());

  const redeem = async (body: { ticket: string }, ctx: OperationContext) => {
    const device = ctx.client.thumbprint;
    const clinician = ctx.client.attributes.clinicianId ?? 'unknown';
    const actor = { id: clinician, device };
    let claims: CloudClaims;
    try {
      claims = await openCloudPart(body.ticket, {
        resolveProducer,
        decryptionKey: deps.decryptionKey,
        cloudId: deps.id,
        deviceId: device,
        now: now(),
      });
    } catch (e) {
      const reason = (e as Error).message;
      await alert('ticket-refused', actor, { reason });
      throw new OperationError(403, 'ticket-refused', reason);
    }
    const ids = claims.images.map((i) => i.id);
    const known = await db
      .selectFrom('instances')
      .select(['id', 'producer', 'trace_basis'])
      .where('id', 'in', ids)
      .execute();
    if (known.length !== new Set(ids).size || known.some((k) => k.producer !== claims.iss)) {
      await alert('ticket-refused', actor, {
        reason: 'the ticket names images this producer did not store here',
        ticket: claims.tid,
      });
      throw new OperationError(
        403,
        'ticket-refused',
        'the ticket names images this producer did not store here',
      );
    }
    const principal = {
      id: clinician,
      organization: ctx.client.attributes.hospital ?? '',
      roles: [ctx.client.attributes.role ?? ''],
    };
    const decision = await deps.policy.decide(OID.domainFederation, {
      principal,
      activity: 'redeem',
      resource: { kind: 'image' },
      context: { purpose: claims.purpose, time: new Date(now()) },
    });
    await audit.append({
      event: '110103',
      subtype: 'policy-decision',
      action: 'R',
      outcome: decision.decision === 'allow' ? 0 : 4,
      actor,
      objects: [{ type: 'ticket', id: claims.tid }],
      details: { decision },
    });
    // Obligation before release: insert the requester's trace into every image (signed slots).
    const slots: { image: string; slot: Uint8Array }[] = [];
    const bases = new Map(known.map((k) => [k.id, k.trace_basis]));
    const enforced = await enforce(decision, {
      'insert-trace': async () => {
        const signed = await Promise.all(
          claims.images.map(async (im) => {
            // The image must be here to take the trace; its basis was read when it was stored.
            if (!(await deps.blobs.has(im.id)))
              throw new Error(`image ${im.id} is missing from the store`);
            const stored = bases.get(im.id);
            const basis = stored
              ? basisFromText(stored)
              : traceBasis(await deps.blobs.get(im.id), `image ${im.id}`);
            const opts = {
              signer: deps.signer,
              traceId: fromHex(im.trace),
              now: new Date(now()),
            };
            return { image: im.id, slot: await signTraceBasis(basis, opts) };
          }),
        );
        slots.push(...signed);
      },
    });
    if (enforced.decision.decision !== 'allow') {
      await alert('redemption-denied', actor, {
        ticket: claims.tid,
        rules: enforced.decision.rules,
        errors: enforced.decision.errors,
      });
      throw new OperationError(
        403,
        'denied',
        `the cloud's policy refuses this redemption: ${[...enforced.decision.errors, ...enforced.decision.rules].join('; ') || 'no rule permits it'}`,
      );
    }
    const release = await deps.policy.decide(OID.domainFederation, {
      principal,
      activity: 'release',
      resource: { kind: 'image' },
      context: {
        purpose: claims.purpose,
        time: new Date(now()),
        traceInserted: slots.length === claims.images.length,
      },
    });
    const rid = toHex(randomBytes(16));
    // The release record commits with the redemption (below): both or neither, and before any byte
    // of the images leaves (retrieval only serves committed redemptions).
    let releaseRecord: AuditEntry | undefined;
    const released = await enforce(release, {
      'log-release': async () => {
        releaseRecord = {
          event: '110103',
          subtype: 'trace-inserted',
          action: 'R',
          outcome: 0,
          actor,
          objects: [
            { type: 'ticket', id: claims.tid },
            ...claims.images.map((i) => ({ type: 'image' as const, id: i.id })),
          ],
          details: {
            redemption: rid,
            traces: [...new Set(claims.images.map((i) => i.trace))],
            producer: claims.iss,
            rules: release.rules,
          },
        };
      },
    });
    if (released.decision.decision !== 'allow' || !releaseRecord) {
      await alert('release-denied', actor, {
        ticket: claims.tid,
        errors: released.decision.errors,
      });
      throw new OperationError(
        403,
        'denied',
        'the trace could not be inserted: the images are not released',
      );
    }
    await deps.beforeRedemptionCommit?.();
    // Spend the nonce, record the redemption and its release record in one transaction: a replay on
    // any replica fails here, and a crash leaves none of it.
    let logged: AuditRecord | undefined;
    try {
      logged = await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('spent_nonces')
          .values({
            nonce: claims.nonce,
            ticket: claims.tid,
            spent_at: new Date(now()).toISOString(),
          })
          .execute();
        await trx
          .insertInto('redemptions')
          .values({
            id: rid,
            ticket: claims.tid,
            device,
            clinician,
            created_at: new Date(now()).toISOString(),
            expires_at: claims.exp,
          })
          .execute();
        await trx
          .insertInto('redemption_items')
          .values(
            slots.map((s, position) => ({
              redemption: rid,
              position,
              image: s.image,
              slot: toHex(s.slot),
            })),
          )
          .execute();
        return audit.appendIn(trx as unknown as Kysely<AuditTables>, releaseRecord!);
      });
    } catch (e) {
      const spent = await db
        .selectFrom('spent_nonces')
        .select('ticket')
        .where('nonce', '=', claims.nonce)
        .executeTakeFirst();
      if (!spent) throw e;
      await alert('ticket-replayed', actor, { ticket: claims.tid });
      throw new OperationError(403, 'ticket-refused', 'the ticket was already redeemed (replay)');
    }
    await audit.checkpointIfDue(logged);
    return { redemption: rid, ticket: claims.tid, images: ids, expiresAt: claims.exp };
  };

  async function* multipart(
    rid: string,
    items: { image: string; slot: string }[],
  ): AsyncGenerator<Uint8Array> {
    const boundary = `ztv-${rid.slice(0, BOUNDARY_BYTES)}`;
    const enc = new TextEncoder();
    for (const it of items) {
      const traced = writeTraceSlot(
        await deps.blobs.get(it.image),
        fromHex(it.slot),
        `image ${it.image}`,
      );
      yield enc.encode(
        `--${boundary}\r\nContent-Type: application/dicom\r\nContent-Location: /instances/${it.image}\r\nContent-Length: ${traced.length}\r\n\r\n`,
      );
      yield traced;
      yield enc.encode('\r\n');
    }
    yield enc.encode(`--${boundary}--\r\n`);
  }

  const auditOps = cloudAuditOperations({ audit, policy: deps.policy, now });
  await pub.register(sessionPlugin, {
    server: deps.sessions,
    ...(deps.capture ? { onOperation: deps.capture.operation } : {}),
    operations: {
      ...auditOps.operations,
      redeem: {
        schema: {
          type: 'object',
          required: ['ticket'],
          additionalProperties: false,
          properties: { ticket: { type: 'string', minLength: 100, maxLength: 200_000 } },
        },
        handler: redeem as never,
      },
    },
    streams: {
      ...auditOps.streams,
      retrieve: {
        schema: {
          type: 'object',
          required: ['redemption'],
          additionalProperties: false,
          properties: { redemption: { type: 'string', pattern: '^[0-9a-f]{32}$' } },
        },
        handler: (async (body: { redemption: string }, ctx: OperationContext) => {
          const r = await db
            .selectFrom('redemptions')
            .selectAll()
            .where('id', '=', body.redemption)
            .executeTakeFirst();
          if (!r || r.device !== ctx.client.thumbprint)
            throw new OperationError(
              404,
              'unknown-redemption',
              'no such redemption for this device',
            );
          if (r.expires_at <= now())
            throw new OperationError(403, 'expired', 'the ticket of this redemption has expired');
          const items = await db
            .selectFrom('redemption_items')
            .select(['image', 'slot'])
            .where('redemption', '=', r.id)
            .orderBy('position')
            .execute();
          await audit.append({
            event: '110103',
            subtype: 'retrieve',
            action: 'R',
            outcome: 0,
            actor: { id: r.clinician, device: r.device },
            objects: [{ type: 'ticket', id: r.ticket }],
            details: { redemption: r.id, images: items.length },
          });
          return multipart(r.id, items);
        }) as never,
      },
    },
  });

  return { internal, public: pub };
}
