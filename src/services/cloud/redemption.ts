/**
 * Redemption, the cloud's side: a clinician's device hands over the ticket's cloud part. The cloud
 * checks the producer's signature, decrypts its own part (image ids, traces, nonce), checks the images
 * are that producer's, decides with the policy, signs the release's traces — one signature over the
 * root of a Merkle tree of the v2 images' trace records, one per v1 image — the obligation before
 * any release — and commits the spent nonce, the redemption and its release record in one
 * transaction, so a replay fails on whichever replica it reaches. Every refusal is a logged alert.
 */
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { AuditEntry, AuditRecord } from '../../core/audit/record.ts';
import { fromHex, randomBytes, toHex } from '../../core/bytes.ts';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { redeem } from '../../core/operations/redemption.ts';
import { OID } from '../../core/pki/oids.ts';
import { signRelease, traceBasis } from '../../core/protect/index.ts';
import { ticketProducerResolver } from '../../core/ticket/producer.ts';
import { openCloudPart, type CloudClaims } from '../../core/ticket/ticket.ts';
import { OperationError } from '../common/session.ts';
import type { LiveTrust } from '../common/trust.ts';
import { enforce, type PolicyEngine } from '../policy/engine.ts';
import type { AuditStore, AuditTables } from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import type { Alert } from './alerts.ts';
import { basisFromText, type CloudTables } from './schema.ts';

export interface RedemptionOptions {
  readonly id: string;
  readonly database: Database<CloudTables>;
  readonly blobs: BlobStore;
  readonly signer: SigningKey;
  /** The cloud's ECDH private key: what the cloud part of tickets is encrypted to. */
  readonly decryptionKey: CryptoKey;
  readonly trust: LiveTrust;
  readonly policy: PolicyEngine;
  readonly audit: AuditStore;
  readonly alert: Alert;
  readonly now: () => number;
  /** For the crash tests: called once the traces are signed, before the redemption commits. */
  readonly beforeRedemptionCommit?: () => Promise<void>;
}

/**
 * The order retrieval streams a redemption's images in: those the device named first (the slice on
 * screen), in its order, then the rest in the ticket's order. Unknown and repeated names are ignored.
 */
export function streamOrder<T extends { readonly image: string }>(
  items: readonly T[],
  first: readonly string[] = [],
): T[] {
  const byImage = new Map<string, T[]>();
  for (const it of items) byImage.set(it.image, [...(byImage.get(it.image) ?? []), it]);
  const out: T[] = [];
  const taken = new Set<T>();
  for (const id of first)
    for (const it of byImage.get(id) ?? [])
      if (!taken.has(it)) {
        taken.add(it);
        out.push(it);
      }
  for (const it of items) if (!taken.has(it)) out.push(it);
  return out;
}

/** Milliseconds between marks, by the name of the step each mark ends. */
class Phases {
  readonly ms: Record<string, number> = {};
  private readonly start = performance.now();
  private last = this.start;
  mark(step: string): void {
    const t = performance.now();
    this.ms[step] = Math.round((t - this.last) * 100) / 100;
    this.last = t;
  }
  total(): number {
    return Math.round((this.last - this.start) * 100) / 100;
  }
}

export async function redemptionPlugin(
  app: FastifyInstance,
  deps: RedemptionOptions,
): Promise<void> {
  const db = deps.database.db;
  const audit = deps.audit;
  const now = deps.now;
  // The same checks as the clinician's side; a refusal's reason becomes the 403 below.
  const resolveProducer = ticketProducerResolver(() => deps.trust.fresh());

  app.sessionOperations.handle(redeem, async (body, ctx) => {
    const phases = new Phases();
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
      await deps.alert('ticket-refused', actor, { reason });
      throw new OperationError(403, 'ticket-refused', reason);
    }
    phases.mark('ticket');
    const ids = claims.images.map((i) => i.id);
    const known = await db
      .selectFrom('instances')
      .select(['id', 'producer', 'trace_basis'])
      .where('id', 'in', ids)
      .execute();
    if (known.length !== new Set(ids).size || known.some((k) => k.producer !== claims.iss)) {
      await deps.alert('ticket-refused', actor, {
        reason: 'the ticket names images this producer did not store here',
        ticket: claims.tid,
      });
      throw new OperationError(
        403,
        'ticket-refused',
        'the ticket names images this producer did not store here',
      );
    }
    phases.mark('images');
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
    // The decision's record: committed with the redemption when it goes ahead (one transaction, one
    // sync to disk), on its own just before the alert when it does not.
    const decisionRecord: AuditEntry = {
      event: '110103',
      subtype: 'policy-decision',
      action: 'R',
      outcome: decision.decision === 'allow' ? 0 : 4,
      actor,
      objects: [{ type: 'ticket', id: claims.tid }],
      details: { decision },
    };
    phases.mark('policy');
    // Obligation before release: insert the requester's trace into every image (signed slots).
    const rid = toHex(randomBytes(16));
    const slots: { image: string; slot: Uint8Array }[] = [];
    const roots: string[] = [];
    const bases = new Map(known.map((k) => [k.id, k.trace_basis]));
    const enforced = await enforce(decision, {
      'insert-trace': async () => {
        const items = await Promise.all(
          claims.images.map(async (im) => {
            // The image must be here to take the trace; its basis was read when it was stored.
            if (!(await deps.blobs.has(im.id)))
              throw new Error(`image ${im.id} is missing from the store`);
            const stored = bases.get(im.id);
            const basis = stored
              ? basisFromText(stored)
              : traceBasis(await deps.blobs.get(im.id), `image ${im.id}`);
            return { basis, traceId: fromHex(im.trace) };
          }),
        );
        const signed = await signRelease(items, {
          signer: deps.signer,
          redemptionId: fromHex(rid),
          now: new Date(now()),
        });
        slots.push(...claims.images.map((im, i) => ({ image: im.id, slot: signed.slots[i]! })));
        roots.push(...signed.roots.map((r) => toHex(r.root)));
      },
    });
    phases.mark('traces');
    if (enforced.decision.decision !== 'allow') {
      await audit.append(decisionRecord);
      await deps.alert('redemption-denied', actor, {
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
            // The signed roots of the release's trace trees: every v2 trace is fixed by these.
            ...(roots.length > 0 ? { traceRoots: roots } : {}),
            producer: claims.iss,
            rules: release.rules,
          },
        };
      },
    });
    if (released.decision.decision !== 'allow' || !releaseRecord) {
      await audit.append(decisionRecord);
      await deps.alert('release-denied', actor, {
        ticket: claims.tid,
        errors: released.decision.errors,
      });
      throw new OperationError(
        403,
        'denied',
        'the trace could not be inserted: the images are not released',
      );
    }
    phases.mark('release');
    await deps.beforeRedemptionCommit?.();
    // Spend the nonce, record the redemption, the decision and the release record in one
    // transaction: a replay on any replica fails here, and a crash leaves none of it.
    let logged: AuditRecord[];
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
            streamOrder(slots, body.first).map((s, position) => ({
              redemption: rid,
              position,
              image: s.image,
              slot: toHex(s.slot),
            })),
          )
          .execute();
        const records = trx as unknown as Kysely<AuditTables>;
        const decided = await audit.appendIn(records, decisionRecord);
        return [decided, await audit.appendIn(records, releaseRecord!)];
      });
    } catch (e) {
      const spent = await db
        .selectFrom('spent_nonces')
        .select('ticket')
        .where('nonce', '=', claims.nonce)
        .executeTakeFirst();
      // The decision was taken: its record stays, whatever became of the redemption.
      await audit.append(decisionRecord);
      if (!spent) throw e;
      await deps.alert('ticket-replayed', actor, { ticket: claims.tid });
      throw new OperationError(403, 'ticket-refused', 'the ticket was already redeemed (replay)');
    }
    phases.mark('commit');
    for (const r of logged) await audit.checkpointIfDue(r);
    phases.mark('checkpoint');
    // How long each step took (no identifier): what bench/retrieval.ts reads as "inside the cloud".
    app.log.info({ images: ids.length, ms: phases.total(), phases: phases.ms }, 'redeemed');
    return { redemption: rid, ticket: claims.tid, images: ids, expiresAt: claims.exp };
  });
}
