/**
 * STOW-RS (DICOMweb, PS3.18 10.5) for the hospital's own systems: `POST /studies` with a
 * multipart/related body of DICOM instances and the integration token; each part is outsourced
 * (`outsourcing.ts`) and the answer is the PS3.18 JSON response — the stored instances with the
 * cloud's id as Retrieve URL, the failed ones with Failure Reason C000 and the reason in words.
 */
import type { FastifyInstance } from 'fastify';
import { boundaryOf, readMultipart } from '../../core/multipart.ts';
import { jsonKey, T } from '../../core/dicom/tags.ts';
import { isZtvError } from '../../core/errors.ts';
import { HttpError } from '../common/http.ts';
import { checkSecret } from '../common/secrets.ts';
import type { OutsourceResult, Producer } from './outsourcing.ts';

/** Private creator of the attributes the producer adds to its STOW-RS answers. */
export const PRIVATE_CREATOR = 'ZTV 1';
/** (0009,0010) reserves block 10 of group 0009 for it; (0009,1001) holds a failure's whole reason. */
export const PRIVATE_CREATOR_TAG = '00090010';
export const FAILURE_TEXT_TAG = '00091001';
/** (0009,1002) in a referenced instance: `NEW` when stored by this request, `ALREADY_STORED` if before. */
export const STORED_BEFORE_TAG = '00091002';

export interface StowOptions {
  readonly producer: Producer;
  /** scrypt hash of the hospital integration token. */
  readonly stowTokenHash: string;
  /** The largest request accepted, in bytes (parts are read and outsourced one at a time). */
  readonly bodyLimit: number;
  /** The largest instance (part) accepted, in bytes. */
  readonly maxPart: number;
  /** The most instances (parts) in one request. */
  readonly maxParts: number;
}

/** The request body as it arrives, refused once longer than `limit` (413). */
async function* bounded(body: AsyncIterable<Buffer>, limit: number): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit)
      throw new HttpError(413, 'too-large', `a STOW-RS request is limited to ${limit} bytes`);
    yield new Uint8Array(c.buffer, c.byteOffset, c.length);
  }
}

export async function stowPlugin(app: FastifyInstance, opts: StowOptions): Promise<void> {
  // The body is read as it streams in: each part is outsourced once complete, so the producer
  // holds one instance at a time, not the whole request.
  app.addContentTypeParser(/^multipart\/related/i, (_req, payload, done) => done(null, payload));
  app.post(
    '/studies',
    {
      // Checked on the declared length before anything else (common/http.ts), and as it streams.
      // The token is checked before a byte of the body is read: the parser hands over the stream.
      bodyLimit: opts.bodyLimit,
      schema: {
        // Bounded here; the token itself is checked below (a wrong one is a 401, not a 400).
        headers: {
          type: 'object',
          properties: {
            authorization: { type: 'string', maxLength: 1024 },
            'content-type': { type: 'string', maxLength: 512 },
          },
        },
      },
    },
    async (req, reply) => {
      const token = /^Bearer (\S{16,256})$/.exec(req.headers.authorization ?? '')?.[1];
      if (!token || !(await checkSecret(token, opts.stowTokenHash)))
        throw new HttpError(401, 'unauthorised', 'a hospital integration token is required');
      const boundary = boundaryOf(req.headers['content-type']);
      const referenced: { sop: string; id: string; created: boolean }[] = [];
      const failed: { index: number; reason: string }[] = [];
      let index = 0;
      const body = bounded(req.body as AsyncIterable<Buffer>, opts.bodyLimit);
      // Instances are protected side by side, one per protect thread and one more whose upload
      // overlaps; the answer lists them in the request's order.
      const window = opts.producer.pool.threads + 1;
      const outcomes: Promise<OutsourceResult | { index: number; reason: string }>[] = [];
      const running = new Set<Promise<unknown>>();
      for await (const part of readMultipart(body, {
        boundary,
        what: 'the STOW-RS request',
        maxPart: opts.maxPart,
        maxParts: opts.maxParts,
      })) {
        const at = ++index;
        const outcome = opts.producer.outsource(part.body).catch((e: unknown) => {
          if (!isZtvError(e)) throw e;
          return { index: at, reason: e.message };
        });
        outcomes.push(outcome);
        const settled: Promise<unknown> = outcome
          .catch(() => undefined)
          .finally(() => running.delete(settled));
        running.add(settled);
        if (running.size >= window) await Promise.race(running);
      }
      for (const o of await Promise.all(outcomes)) {
        if ('reason' in o) failed.push(o);
        else referenced.push({ sop: o.sopInstanceUid, id: o.cloudId, created: o.created });
      }
      // A PS3.18 STOW response in JSON: referenced instances, and the failed ones with their reason.
      const status = failed.length === 0 ? 200 : referenced.length === 0 ? 409 : 202;
      return reply.code(status).send({
        [jsonKey(T.ReferencedSOPSequence)]: {
          vr: 'SQ',
          Value: referenced.map((r) => ({
            [jsonKey(T.ReferencedSOPInstanceUID)]: { vr: 'UI', Value: [r.sop] },
            [jsonKey(T.RetrieveURL)]: { vr: 'UR', Value: [`cloud:${r.id}`] },
            [PRIVATE_CREATOR_TAG]: { vr: 'LO', Value: [PRIVATE_CREATOR] },
            [STORED_BEFORE_TAG]: { vr: 'CS', Value: [r.created ? 'NEW' : 'ALREADY_STORED'] },
          })),
        },
        // Failure Reason C000 (cannot understand) with the reason in words: a short Error Comment
        // (LO holds 64 characters) and the whole sentence in a private attribute of block ZTV.
        [jsonKey(T.FailedSOPSequence)]: {
          vr: 'SQ',
          Value: failed.map((f) => ({
            [jsonKey(T.FailureReason)]: { vr: 'US', Value: [0xc000] },
            [jsonKey(T.ErrorComment)]: {
              vr: 'LO',
              Value: [`part ${f.index}: ${f.reason}`.slice(0, 64)],
            },
            [PRIVATE_CREATOR_TAG]: { vr: 'LO', Value: [PRIVATE_CREATOR] },
            [FAILURE_TEXT_TAG]: { vr: 'LT', Value: [`part ${f.index}: ${f.reason}`] },
          })),
        },
      });
    },
  );
}
