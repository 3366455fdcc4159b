/**
 * Retrieval: the device that redeemed a ticket streams its traced instances, as multipart/related
 * through its session, until the ticket expires. Each instance leaves with the trace slot signed at
 * redemption written into it — at the place recorded when the image was stored, in the bytes just
 * read, without parsing the image again; nothing else of the stored bytes changes.
 *
 * A cut retrieval resumes (`from`) at the next instance of the same redemption, with the same slots:
 * nothing beyond what the redemption released, nothing after it expires. Each retrieval is audited
 * twice: when it starts (`retrieve`: how many instances it is to send, from where) and when it ends
 * (`delivered`: how many instances and bytes were handed to the network, and whether it completed or
 * was interrupted — outcome 4). A `retrieve` without its `delivered` was cut by the cloud's own death.
 */
import type { FastifyInstance } from 'fastify';
import { fromHex } from '../../core/bytes.ts';
import { writeMultipart, type OutgoingPart } from '../../core/multipart.ts';
import { retrieve } from '../../core/operations/redemption.ts';
import {
  placementFits,
  stampTraceSlot,
  writeTraceSlot,
  type TracePlacement,
} from '../../core/protect/index.ts';
import { OperationError } from '../common/session.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import { placementFromText, type CloudTables } from './schema.ts';

export interface RetrievalOptions {
  readonly database: Database<CloudTables>;
  readonly blobs: BlobStore;
  readonly audit: AuditStore;
  readonly now: () => number;
  /** For the crash tests: called in a retrieval from its start, once two instances were sent. */
  readonly midRetrieval?: () => Promise<void>;
}

const BOUNDARY_BYTES = 12;

/** What one retrieval has handed to the network so far. */
interface Delivery {
  readonly redemption: string;
  readonly ticket: string;
  readonly actor: { readonly id: string; readonly device: string };
  readonly from: number;
  instances: number;
  bytes: number;
}

export async function retrievalPlugin(app: FastifyInstance, deps: RetrievalOptions): Promise<void> {
  const db = deps.database.db;

  /**
   * The traced instances, each read and traced when the previous one has been sent: stamped at the
   * recorded placement (rows stored before placements were recorded: by reading the image).
   */
  async function* traced(
    items: { image: string; slot: string }[],
    placements: Map<string, TracePlacement>,
    delivery: Delivery,
  ): AsyncGenerator<OutgoingPart> {
    let complete = false;
    try {
      for (const it of items) {
        const bytes = await deps.blobs.get(it.image);
        const slot = fromHex(it.slot);
        const at = placements.get(it.image);
        const body =
          at && placementFits(at, bytes.length) && at.bits === slot.length * 8
            ? stampTraceSlot(bytes, at, slot)
            : writeTraceSlot(bytes, slot, `image ${it.image}`);
        yield { headers: { 'Content-Location': `/instances/${it.image}` }, body };
        // Asked for the next one: this one went whole to the session's frames.
        delivery.instances++;
        delivery.bytes += body.length;
        if (delivery.from === 0 && delivery.instances === 2) await deps.midRetrieval?.();
      }
      complete = true;
    } finally {
      await deps.audit.append({
        event: '110103',
        subtype: 'delivered',
        action: 'R',
        outcome: complete ? 0 : 4,
        actor: delivery.actor,
        objects: [{ type: 'ticket', id: delivery.ticket }],
        details: {
          redemption: delivery.redemption,
          from: delivery.from,
          instances: delivery.instances,
          bytes: delivery.bytes,
          of: items.length,
          complete,
        },
      });
    }
  }

  app.sessionOperations.stream(retrieve, async (body, ctx) => {
    const r = await db
      .selectFrom('redemptions')
      .selectAll()
      .where('id', '=', body.redemption)
      .executeTakeFirst();
    if (!r || r.device !== ctx.client.thumbprint)
      throw new OperationError(404, 'unknown-redemption', 'no such redemption for this device');
    if (r.expires_at <= deps.now())
      throw new OperationError(403, 'expired', 'the ticket of this redemption has expired');
    const from = body.from ?? 0;
    const items = await db
      .selectFrom('redemption_items')
      .select(['image', 'slot'])
      .where('redemption', '=', r.id)
      .where('position', '>=', from)
      .orderBy('position')
      .execute();
    const placements = new Map<string, TracePlacement>();
    if (items.length > 0)
      for (const row of await db
        .selectFrom('instances')
        .select(['id', 'trace_basis'])
        .where('id', 'in', [...new Set(items.map((i) => i.image))])
        .execute()) {
        const p = row.trace_basis ? placementFromText(row.trace_basis) : undefined;
        if (p) placements.set(row.id, p);
      }
    await deps.audit.append({
      event: '110103',
      subtype: 'retrieve',
      action: 'R',
      outcome: 0,
      actor: { id: r.clinician, device: r.device },
      objects: [{ type: 'ticket', id: r.ticket }],
      details: { redemption: r.id, images: items.length, from },
    });
    const delivery: Delivery = {
      redemption: r.id,
      ticket: r.ticket,
      actor: { id: r.clinician, device: r.device },
      from,
      instances: 0,
      bytes: 0,
    };
    return writeMultipart(
      traced(items, placements, delivery),
      `ztv-${r.id.slice(0, BOUNDARY_BYTES)}`,
    );
  });
}
