/**
 * A party's link to the audit witness — the central authority, over the federation's mutual TLS
 * (docs/audit.md §3): it sends its checkpoints there (`submit`) and fetches the witness's signed
 * statement about a party (`statement`). Also two small plugins: the consumer hospital relays
 * statements to auditors' browsers and tools, which hold no federation certificate (the statement is
 * signed by the witness over the auditor's nonce, so the relay can neither forge nor replay one, only
 * refuse — which verification reports), and every party's `GET /health/audit` says where its chain
 * and its witness stand.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Cosignature } from '../../core/audit/record.ts';
import { checkpointKeys } from '../../core/audit/trail.ts';
import type {
  ConflictKind,
  Head,
  KeyResolver,
  Submission,
  WitnessStatement,
} from '../../core/audit/witness.ts';
import { mtlsFetch, type TlsIdentity } from '../common/tls.ts';
import type { AuditStore } from './audit-store.ts';

/** What the witness answers a submission (the body of its 200, 409 and 400 answers). */
export type WitnessAnswer =
  | {
      readonly outcome: 'witnessed' | 'duplicate';
      readonly latest: Head;
      readonly cosignature: Cosignature;
    }
  | { readonly outcome: 'stale-range'; readonly latest: Head }
  | {
      readonly outcome: 'conflict';
      readonly kind: ConflictKind;
      readonly latest: Head;
      readonly detail: string;
    }
  | { readonly outcome: 'invalid'; readonly detail: string };

export interface WitnessTransport {
  /** Sends one checkpoint; throws when the witness cannot be reached or answers something else. */
  submit(s: Submission): Promise<WitnessAnswer>;
  /** The witness's statement about a party over `nonce` (not verified here: see verifyStatement). */
  statement(party: string, nonce: string): Promise<WitnessStatement>;
  /** The witness's certified key (the authority's organisation certificate) by key id. */
  readonly witnessKey: KeyResolver;
}

const OUTCOMES = new Set(['witnessed', 'duplicate', 'stale-range', 'conflict', 'invalid']);

/** The witness at the authority's URL, reached with the party's own certificate. */
export function mtlsWitness(
  authority: string,
  identity: () => TlsIdentity,
  timeoutMs = 10_000,
): WitnessTransport {
  const ask = async (path: string, body?: unknown) => {
    const r = await mtlsFetch(`${authority}${path}`, identity(), {
      method: body === undefined ? 'GET' : 'POST',
      timeoutMs,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(r.body.toString()) as Record<string, unknown>;
    } catch {
      // not JSON: the status says enough below
    }
    return { status: r.status, json };
  };
  return {
    async submit(s) {
      const { status, json } = await ask('/witness/checkpoints', s);
      if ([200, 400, 409].includes(status) && OUTCOMES.has(json.outcome as string))
        return json as unknown as WitnessAnswer;
      throw new Error(
        `the witness answered ${status}${typeof json.message === 'string' ? `: ${json.message}` : ''}`,
      );
    },
    async statement(party, nonce) {
      const { status, json } = await ask(`/witness/${party}?nonce=${nonce}`);
      if (status !== 200) throw new Error(`the witness answered ${status}`);
      return json as unknown as WitnessStatement;
    },
    witnessKey: (keyId) => checkpointKeys(identity().pki, 'authority')(keyId),
  };
}

const PARTY_PARAM = {
  type: 'object',
  required: ['party'],
  additionalProperties: false,
  properties: { party: { type: 'string', enum: ['authority', 'producer', 'cloud', 'consumer'] } },
} as const;

/** The query of a statement: the auditor's nonce, 16 random bytes in hex. */
export const NONCE_QUERY = {
  type: 'object',
  required: ['nonce'],
  additionalProperties: false,
  properties: { nonce: { type: 'string', pattern: '^[0-9a-f]{32}$' } },
} as const;

export const STATEMENT_ROUTE = { params: PARTY_PARAM, querystring: NONCE_QUERY } as const;

/**
 * `GET /witness/:party?nonce=` on the consumer hospital: the witness's statement, fetched from the
 * authority over mutual TLS and passed on unchanged. At most `concurrency` fetches at once (503 past
 * that): each costs the authority a signature.
 */
export const witnessRelay: FastifyPluginAsync<{
  readonly authority: string;
  readonly identity: () => TlsIdentity;
  readonly concurrency?: number;
}> = async (app, opts) => {
  let inFlight = 0;
  app.get('/witness/:party', { schema: STATEMENT_ROUTE }, async (req, reply) => {
    const { party } = req.params as { party: string };
    const { nonce } = req.query as { nonce: string };
    if (inFlight >= (opts.concurrency ?? 8))
      return reply.code(503).send({ error: 'busy', message: 'too many witness requests, retry' });
    inFlight++;
    try {
      const r = await mtlsFetch(
        `${opts.authority}/witness/${party}?nonce=${nonce}`,
        opts.identity(),
        {
          timeoutMs: 10_000,
        },
      );
      return reply
        .code(r.status === 200 ? 200 : 502)
        .type('application/json')
        .send(
          r.status === 200
            ? r.body
            : { error: 'witness', message: `the witness answered ${r.status}` },
        );
    } catch {
      return reply.code(502).send({
        error: 'witness-unreachable',
        message: 'the witness (central authority) cannot be reached',
      });
    } finally {
      inFlight--;
    }
  });
};

/**
 * `GET /health/audit`: the head of the party's chain and how it stands with its witness — `current`,
 * `pending`, `unreachable` since when (appends go on, checkpoints queue), or `refused` (the witness
 * refused a checkpoint as not extending what it saw: the chain was rolled back, forked or rewritten);
 * and, when it forwards its records over syslog, where each collector stands (`collectors`).
 */
export const auditHealth: FastifyPluginAsync<{ readonly audit: AuditStore }> = async (
  app,
  opts,
) => {
  app.get('/health/audit', async () => {
    const records = await opts.audit.count();
    const collectors = opts.audit.collectors();
    return {
      party: opts.audit.party,
      records,
      witness: await opts.audit.witnessStatus(),
      ...(collectors.length ? { collectors } : {}),
    };
  });
};
