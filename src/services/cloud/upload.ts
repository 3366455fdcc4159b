/**
 * Producers upload protected instances over mutual TLS: `PUT /instances/<upload key>` on the cloud's
 * internal listener. The peer must be a producer of the current trust group; the instance must be
 * intact and sealed by that producer. Idempotent by upload key and digest. The blob is written first
 * and the row last, so a crash in between leaves an orphan blob (swept at start), never a row
 * without its blob.
 */
import type { FastifyInstance } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { toHex } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { keyIdOf } from '../../core/crypto/keys.ts';
import { isZtvError } from '../../core/errors.ts';
import { inspectImage, readProtected, traceBasisOf } from '../../core/protect/index.ts';
import { HttpError } from '../common/http.ts';
import { checkPeer, type Peer } from '../common/tls.ts';
import type { LiveTrust } from '../common/trust.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { BlobStore } from '../storage/blobs.ts';
import type { Database } from '../storage/db.ts';
import type { Alert } from './alerts.ts';
import { basisToText, type CloudTables } from './schema.ts';

export interface UploadOptions {
  readonly database: Database<CloudTables>;
  readonly blobs: BlobStore;
  readonly trust: LiveTrust;
  readonly audit: AuditStore;
  readonly alert: Alert;
  readonly now: () => number;
  /** For the crash tests: called between storing the blob and committing the row. */
  readonly afterBlobWrite?: () => Promise<void>;
}

const KEY = /^[0-9a-f]{64}$/;
const PARAMS = {
  type: 'object',
  required: ['key'],
  properties: { key: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
} as const;

export async function uploadPlugin(app: FastifyInstance, opts: UploadOptions): Promise<void> {
  const db = opts.database.db;
  app.addContentTypeParser('application/dicom', { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );

  // The peer is checked when the request's head arrives, before a byte of its body is read: a
  // client that is not a producer of the trust group cannot make the cloud buffer 256 MiB.
  const peers = new WeakMap<object, Peer>();
  app.put<{ Params: { key: string }; Body: Buffer | undefined }>(
    '/instances/:key',
    {
      schema: { params: PARAMS },
      onRequest: async (req) => {
        // The key's form first (no certificate work for a malformed request); the schema checks
        // it again after parsing.
        if (!KEY.test(req.params.key))
          throw new HttpError(400, 'bad-request', 'the upload key is 64 hexadecimal digits');
        const peer = await checkPeer(
          req.raw.socket as TLSSocket,
          await opts.trust.fresh(),
          'tls-client',
          ['producer'],
        );
        if (!peer.ok) {
          await opts.alert('upload-refused', { id: 'unknown' }, { reason: peer.reason });
          throw new HttpError(403, 'forbidden', peer.reason);
        }
        peers.set(req, peer.peer);
      },
    },
    async (req) => {
      const producer = peers.get(req);
      if (!producer) throw new HttpError(403, 'forbidden', 'the peer was not checked');
      const { key } = req.params;
      const body = req.body;
      if (!body || body.length === 0)
        throw new HttpError(400, 'bad-request', 'send the protected instance as application/dicom');
      const bytes = new Uint8Array(body.buffer, body.byteOffset, body.length);
      const digest = toHex(sha256(bytes));
      const existing = await db
        .selectFrom('instances')
        .selectAll()
        .where('producer', '=', producer.memberId)
        .where('upload_key', '=', key)
        .executeTakeFirst();
      if (existing) {
        if (existing.digest !== digest)
          throw new HttpError(409, 'conflict', 'this upload key already names another instance');
        return { id: existing.id, created: false };
      }
      // Only protected instances, sealed by the producer that uploads them.
      // Read once: the same reading gives the report checked here and the trace basis stored.
      const image = (() => {
        try {
          return readProtected(bytes, 'the upload');
        } catch (e) {
          if (isZtvError(e)) throw new HttpError(400, 'not-protected', e.message);
          throw e;
        }
      })();
      const report = inspectImage(image);
      const sealer = report.seal?.signerKeyId;
      if (
        !report.intact ||
        sealer !== toHex(keyIdOf(new Uint8Array(producer.cert.publicKey.rawData)))
      )
        throw new HttpError(
          400,
          'not-protected',
          'the instance is not intact or not sealed by the uploading producer',
        );
      const basis = traceBasisOf(image, 'the upload');
      const id = crypto.randomUUID();
      await opts.blobs.put(id, bytes); // blob first …
      await opts.afterBlobWrite?.();
      await db // … row last: a crash in between leaves an orphan blob, never a row without its blob
        .insertInto('instances')
        .values({
          id,
          producer: producer.memberId,
          upload_key: key,
          digest,
          size: bytes.length,
          created_at: new Date(opts.now()).toISOString(),
          trace_basis: basisToText(basis),
        })
        .execute();
      await opts.audit.append({
        event: '110107',
        subtype: 'outsourcing',
        action: 'C',
        outcome: 0,
        actor: { id: producer.memberId, organisation: producer.memberId },
        objects: [{ type: 'image', id }],
        details: { size: bytes.length },
      });
      return { id, created: true };
    },
  );
}
