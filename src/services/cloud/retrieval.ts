/**
 * Retrieval: the device that redeemed a ticket streams its traced instances, as multipart/related
 * through its session, until the ticket expires. Each instance leaves with the trace slot signed at
 * redemption written into it; nothing else of the stored bytes changes.
 */
import type { FastifyInstance } from 'fastify';
import { fromHex } from '../../core/bytes.ts';
import { writeMultipart, type OutgoingPart } from '../../core/multipart.ts';
import { retrieve } from '../../core/operations/redemption.ts';
import { writeTraceSlot } from '../../core/protect/index.ts';
import { OperationError } from '../common/session.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import type { CloudTables } from './schema.ts';

export interface RetrievalOptions {
  readonly database: Database<CloudTables>;
  readonly blobs: BlobStore;
  readonly audit: AuditStore;
  readonly now: () => number;
}

const BOUNDARY_BYTES = 12;

export async function retrievalPlugin(app: FastifyInstance, deps: RetrievalOptions): Promise<void> {
  const db = deps.database.db;

  /** The traced instances, each read and traced when the previous one has been sent. */
  async function* traced(items: { image: string; slot: string }[]): AsyncGenerator<OutgoingPart> {
    for (const it of items)
      yield {
        headers: { 'Content-Location': `/instances/${it.image}` },
        body: writeTraceSlot(await deps.blobs.get(it.image), fromHex(it.slot), `image ${it.image}`),
      };
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
    const items = await db
      .selectFrom('redemption_items')
      .select(['image', 'slot'])
      .where('redemption', '=', r.id)
      .orderBy('position')
      .execute();
    await deps.audit.append({
      event: '110103',
      subtype: 'retrieve',
      action: 'R',
      outcome: 0,
      actor: { id: r.clinician, device: r.device },
      objects: [{ type: 'ticket', id: r.ticket }],
      details: { redemption: r.id, images: items.length },
    });
    return writeMultipart(traced(items), `ztv-${r.id.slice(0, BOUNDARY_BYTES)}`);
  });
}
