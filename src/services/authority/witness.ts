/**
 * The audit witness at the central authority (docs/audit.md §3): parties send their signed
 * checkpoints here over mutual TLS; each is accepted only if it extends the last one accepted from
 * that party — proven by the content digests of the records between them (`judgeSubmission`) — and
 * is then countersigned with the authority's certified key and kept. A refused one is kept as the
 * party's own signed evidence (rolled back, forked, inconsistent) and logged as a security alert in
 * the authority's chain. Anyone in the federation may ask for the witness's statement about a party,
 * signed over a nonce of theirs: its first and latest checkpoints, recent history and conflicts.
 */
import type { TLSSocket } from 'node:tls';
import type { FastifyPluginAsync } from 'fastify';
import { sql, type Kysely, type Migration } from 'kysely';
import { fromBase64Url, toBase64Url, toHex } from '../../core/bytes.ts';
import { keyIdOf, verifyKeyFromSpki, type SigningKey } from '../../core/crypto/keys.ts';
import { readOrganisation } from '../../core/pki/extensions.ts';
import { OID } from '../../core/pki/oids.ts';
import { thumbprint } from '../../core/pki/validate.ts';
import { X509Certificate } from '../../core/pki/x509.ts';
import {
  checkpointMessage,
  cosignatureMessage,
  type Checkpoint,
  type Cosignature,
} from '../../core/audit/record.ts';
import {
  judgeSubmission,
  MAX_DIGESTS,
  statementMessage,
  STATEMENT_CONFLICTS,
  STATEMENT_HISTORY,
  type Conflict,
  type ConflictKind,
  type Submission,
  type WitnessedCheckpoint,
  type WitnessStatement,
} from '../../core/audit/witness.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import { STATEMENT_ROUTE, type WitnessAnswer } from '../storage/audit-witness.ts';
import type { Database } from '../storage/db.ts';

export interface WitnessTables {
  /** Per party: its first (trusted or proven) and latest witnessed checkpoint. */
  witness_parties: { party: string; first_seq: number; latest_seq: number; latest_hash: string };
  witness_checkpoints: {
    party: string;
    seq: number;
    hash: string;
    time: string;
    key_id: string;
    signature: string;
    witnessed_at: string;
    cosignature: string;
  };
  witness_conflicts: {
    party: string;
    kind: string;
    seq: number;
    hash: string;
    time: string;
    key_id: string;
    signature: string;
    received_at: string;
    latest_seq: number;
    latest_hash: string;
    detail: string;
  };
  /** The authority's own membership table (src/services/authority/app.ts), read to admit peers. */
  certificates: { thumbprint: string; role: string; admitted: number; revoked_at: string | null };
}

export const witnessMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('witness_parties')
      .addColumn('party', 'text', (c) => c.primaryKey())
      .addColumn('first_seq', 'bigint', (c) => c.notNull())
      .addColumn('latest_seq', 'bigint', (c) => c.notNull())
      .addColumn('latest_hash', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('witness_checkpoints')
      .addColumn('party', 'text', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('signature', 'text', (c) => c.notNull())
      .addColumn('witnessed_at', 'text', (c) => c.notNull())
      .addColumn('cosignature', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('witness_checkpoints_pk', ['party', 'seq'])
      .execute();
    await db.schema
      .createTable('witness_conflicts')
      .addColumn('party', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('signature', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .addColumn('latest_seq', 'bigint', (c) => c.notNull())
      .addColumn('latest_hash', 'text', (c) => c.notNull())
      .addColumn('detail', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('witness_conflicts_pk', ['party', 'kind', 'seq', 'hash'])
      .execute();
  },
};

/** Conflicts kept per party: evidence enough, and a bound on what a misbehaving party can store. */
export const MAX_CONFLICTS = 1000;

export class WitnessError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type CheckpointRow = WitnessTables['witness_checkpoints'];

/** A party's signed checkpoint as a witness row stores it. */
const checkpointOf = (
  r: Pick<CheckpointRow, 'party' | 'seq' | 'hash' | 'time' | 'key_id' | 'signature'>,
): Checkpoint => ({
  party: r.party,
  seq: Number(r.seq),
  hash: r.hash,
  time: r.time,
  keyId: r.key_id,
  signature: r.signature,
});

const witnessed = (r: CheckpointRow): WitnessedCheckpoint => ({
  ...checkpointOf(r),
  witnessedAt: r.witnessed_at,
});

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

export class Witness {
  private readonly db: Kysely<WitnessTables>;
  /** Submissions of one party are judged one at a time (the authority is one process). */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    database: Pick<Database<WitnessTables>, 'db'>,
    private readonly signer: SigningKey,
    private readonly audit?: AuditStore,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.db = database.db;
  }

  /**
   * Judges a submission from `peer` (its TLS certificate): a member of the trust group, whose role is
   * the party the checkpoint names and whose key signed it.
   */
  async submit(peer: X509Certificate, s: Submission): Promise<WitnessAnswer> {
    const c = s.checkpoint;
    const member = await this.db
      .selectFrom('certificates')
      .select(['role'])
      .where('thumbprint', '=', await thumbprint(peer))
      .where('admitted', '=', 1)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!member) throw new WitnessError(403, 'not-a-member', 'the peer is not an admitted member');
    const ext = peer.getExtension(OID.organisationExtension);
    const role = ext ? readOrganisation(ext.value).role : undefined;
    if (role !== c.party || member.role !== c.party)
      throw new WitnessError(
        403,
        'wrong-party',
        `a ${role ?? 'peer'} cannot submit ${c.party}'s checkpoints`,
      );
    const spki = new Uint8Array(peer.publicKey.rawData);
    if (toHex(keyIdOf(spki)) !== c.keyId)
      throw new WitnessError(
        403,
        'wrong-key',
        'the checkpoint is not signed with the peer certificate key',
      );
    const key = await verifyKeyFromSpki(spki);
    if (!(await key.verify(fromBase64Url(c.signature), checkpointMessage(c))))
      return { outcome: 'invalid', detail: 'the checkpoint signature does not verify' };
    if (!ISO.test(c.time) || Date.parse(c.time) > this.now().getTime() + 5 * 60_000)
      return { outcome: 'invalid', detail: 'the checkpoint time is malformed or in the future' };
    return this.serially(c.party, () => this.judge(s));
  }

  private serially<T>(party: string, f: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(party) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(f);
    this.queues.set(party, next);
    return next;
  }

  private async latestOf(party: string) {
    return this.db
      .selectFrom('witness_parties')
      .selectAll()
      .where('party', '=', party)
      .executeTakeFirst();
  }

  private async judge(s: Submission): Promise<WitnessAnswer> {
    const c = s.checkpoint;
    const row = await this.latestOf(c.party);
    const latest = row ? { seq: Number(row.latest_seq), hash: row.latest_hash } : undefined;
    const j = judgeSubmission(latest, s);
    switch (j.verdict) {
      case 'invalid':
        return { outcome: 'invalid', detail: j.detail };
      case 'stale-range':
        return { outcome: 'stale-range', latest: j.latest };
      case 'duplicate': {
        const stored = await this.db
          .selectFrom('witness_checkpoints')
          .select('cosignature')
          .where('party', '=', c.party)
          .where('seq', '=', c.seq)
          .executeTakeFirstOrThrow();
        return {
          outcome: 'duplicate',
          latest: latest!,
          cosignature: JSON.parse(stored.cosignature) as Cosignature,
        };
      }
      case 'conflict':
        await this.keepConflict(c, j.kind, latest!, j.detail);
        return { outcome: 'conflict', kind: j.kind, latest: latest!, detail: j.detail };
      case 'accept': {
        const witnessedAt = this.now().toISOString();
        const cosignature: Cosignature = {
          keyId: this.signer.publicKey.keyIdHex,
          witnessedAt,
          signature: toBase64Url(await this.signer.sign(cosignatureMessage(c, witnessedAt))),
        };
        await this.db.transaction().execute(async (trx) => {
          await trx
            .insertInto('witness_checkpoints')
            .values({
              party: c.party,
              seq: c.seq,
              hash: c.hash,
              time: c.time,
              key_id: c.keyId,
              signature: c.signature,
              witnessed_at: witnessedAt,
              cosignature: JSON.stringify(cosignature),
            })
            .execute();
          if (row)
            await trx
              .updateTable('witness_parties')
              .set({ latest_seq: c.seq, latest_hash: c.hash })
              .where('party', '=', c.party)
              .execute();
          else
            await trx
              .insertInto('witness_parties')
              .values({ party: c.party, first_seq: c.seq, latest_seq: c.seq, latest_hash: c.hash })
              .execute();
        });
        return { outcome: 'witnessed', latest: { seq: c.seq, hash: c.hash }, cosignature };
      }
    }
  }

  private async keepConflict(
    c: Checkpoint,
    kind: ConflictKind,
    latest: { seq: number; hash: string },
    detail: string,
  ): Promise<void> {
    const n = await this.db
      .selectFrom('witness_conflicts')
      .select(sql<number>`count(*)`.as('n'))
      .where('party', '=', c.party)
      .executeTakeFirstOrThrow();
    if (Number(n.n) >= MAX_CONFLICTS) return;
    const r = await this.db
      .insertInto('witness_conflicts')
      .values({
        party: c.party,
        kind,
        seq: c.seq,
        hash: c.hash,
        time: c.time,
        key_id: c.keyId,
        signature: c.signature,
        received_at: this.now().toISOString(),
        latest_seq: latest.seq,
        latest_hash: latest.hash,
        detail,
      })
      .onConflict((oc) => oc.columns(['party', 'kind', 'seq', 'hash']).doNothing())
      .executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0) > 0)
      await this.audit?.append({
        event: '110113',
        subtype: 'witness-conflict',
        action: 'E',
        outcome: 8,
        actor: { id: c.party },
        objects: [],
        details: { kind, seq: c.seq, witnessedSeq: latest.seq, detail },
      });
  }

  /** The statement about a party, signed over `nonce`. */
  async statement(party: string, nonce: string): Promise<WitnessStatement> {
    const row = await this.latestOf(party);
    const history = (
      await this.db
        .selectFrom('witness_checkpoints')
        .selectAll()
        .where('party', '=', party)
        .orderBy('seq', 'desc')
        .limit(STATEMENT_HISTORY)
        .execute()
    )
      .map(witnessed)
      .reverse();
    const first = row
      ? await this.db
          .selectFrom('witness_checkpoints')
          .selectAll()
          .where('party', '=', party)
          .where('seq', '=', Number(row.first_seq))
          .executeTakeFirst()
      : undefined;
    const conflicts: Conflict[] = (
      await this.db
        .selectFrom('witness_conflicts')
        .selectAll()
        .where('party', '=', party)
        .orderBy('received_at', 'desc')
        .limit(STATEMENT_CONFLICTS)
        .execute()
    )
      .reverse()
      .map((r) => ({
        kind: r.kind as ConflictKind,
        checkpoint: checkpointOf(r),
        receivedAt: r.received_at,
        witnessed: { seq: Number(r.latest_seq), hash: r.latest_hash },
        detail: r.detail,
      }));
    const body = {
      party,
      nonce,
      time: this.now().toISOString(),
      first: first ? witnessed(first) : null,
      latest: history.at(-1) ?? null,
      history,
      conflicts,
      keyId: this.signer.publicKey.keyIdHex,
    };
    return { ...body, signature: toBase64Url(await this.signer.sign(statementMessage(body))) };
  }
}

const HEX64 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;

const SUBMISSION_SCHEMA = {
  type: 'object',
  required: ['checkpoint', 'from', 'digests'],
  additionalProperties: false,
  properties: {
    checkpoint: {
      type: 'object',
      required: ['seq', 'hash', 'time', 'party', 'keyId', 'signature'],
      additionalProperties: false,
      properties: {
        seq: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
        hash: HEX64,
        time: { type: 'string', maxLength: 32 },
        party: { type: 'string', enum: ['producer', 'cloud', 'consumer'] },
        keyId: { type: 'string', pattern: '^[0-9a-f]{32}$' },
        signature: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,200}$' },
      },
    },
    from: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    digests: { type: 'array', maxItems: MAX_DIGESTS, items: HEX64 },
  },
} as const;

/** The peer's certificate as the TLS layer verified it, or none (plain HTTP, `inject`). */
const peerOf = (socket: unknown): X509Certificate | undefined => {
  const raw = (socket as Partial<TLSSocket>).getPeerX509Certificate?.();
  return raw ? new X509Certificate(new Uint8Array(raw.raw)) : undefined;
};

/**
 * The witness's routes on the authority: `POST /witness/checkpoints` (a member's submission, its
 * certificate from the mutual TLS handshake) and `GET /witness/:party?nonce=` (a signed statement).
 */
export const witnessPlugin: FastifyPluginAsync<{
  readonly database: Pick<Database<WitnessTables>, 'db'>;
  readonly audit: AuditStore;
  readonly now?: () => Date;
}> = async (app, opts) => {
  const witness = new Witness(opts.database, opts.audit.signer, opts.audit, opts.now);
  app.post(
    '/witness/checkpoints',
    { schema: { body: SUBMISSION_SCHEMA }, bodyLimit: MAX_DIGESTS * 70 + 4096 },
    async (req, reply) => {
      const peer = peerOf(req.raw.socket);
      if (!peer)
        return reply.code(401).send({ error: 'no-certificate', message: 'submit over mutual TLS' });
      try {
        const answer = await witness.submit(peer, req.body as Submission);
        const status = {
          witnessed: 200,
          duplicate: 200,
          'stale-range': 409,
          conflict: 409,
          invalid: 400,
        };
        if (answer.outcome === 'conflict')
          req.log.warn(
            { party: (req.body as Submission).checkpoint.party, kind: answer.kind },
            'witness refused a checkpoint',
          );
        return reply.code(status[answer.outcome]).send(answer);
      } catch (e) {
        if (e instanceof WitnessError)
          return reply.code(e.status).send({ error: e.code, message: e.message });
        throw e;
      }
    },
  );
  app.get('/witness/:party', { schema: STATEMENT_ROUTE }, async (req) => {
    const { party } = req.params as { party: string };
    const { nonce } = req.query as { nonce: string };
    return witness.statement(party, nonce);
  });
};
