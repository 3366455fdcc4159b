// The audit trail view on real chains: records made as the parties make them (hash-chained and signed),
// checkpoints signed with the parties' certified keys of a real federation PKI, verified the way the
// browser does (`verifiedTrail`: the merged trail, then each party's whole chain checked here, against
// what the witness saw of it — a chain cut after the witness saw it is named `truncated`, one that
// could not be compared with the witness is never called verified). The parties here are
// stand-ins that serve what they store, so that one can vouch for a chain it holds broken — which the
// real services (exercised end to end in e2e/audit.e2e.test.ts) never do. A record rewritten
// after the fact shows its break — seq and kind — on exactly that row; a party that vouches for itself
// while its chain is broken is caught disagreeing; a break outside the selection, and a checkpoint
// signed by a key the PKI does not certify for that party, are named; queries are validated before
// anything is sent; details appear as exports carry them; the export follows the shown selection.
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditedParty, MergedFilter } from '../../core/audit/client.ts';
import { parseCsv } from '../../core/audit/csv.ts';
import {
  checkpointMessage,
  GENESIS,
  nextRecord,
  signRecord,
  type AuditEntry,
  type AuditRecord,
  type Checkpoint,
} from '../../core/audit/record.ts';
import {
  mergeTrails,
  studyRef,
  type MergedTrail,
  verifyTrail,
  type PartyTrail,
  type TrailFilter,
} from '../../core/audit/trail.ts';
import { verifyChain } from '../../core/audit/verify.ts';
import type { WitnessView } from '../../core/audit/witness.ts';
import { toBase64Url } from '../../core/bytes.ts';
import type { SigningKey } from '../../core/crypto/keys.ts';
import { signingKeyFromCryptoKeys } from '../../core/crypto/keys.ts';
import type { PkiView } from '../../core/pki/resolver.ts';
import { testTrust, type TestTrust } from '../../../test/pipeline.ts';
import { viewOf } from '../pipeline/trust.ts';
import { verifiedTrail } from './auditor.ts';
import { TrailTable } from './TrailPanel.tsx';
import {
  exportSelection,
  organisationNames,
  outcomeText,
  QueryError,
  selectRows,
  trailFilter,
  trailView,
  type TrailRow,
} from './trail-model.ts';
import { validateAuditMessages } from '../../../test/audit-schema.ts';

const PATIENT = 'a3f1c2d4e5f60718293a4b5c6d7e8f90';
const STUDY_UID = '1.2.840.113619.2.55.3.604688119.969.1268071029.320';
const TICKET = '5e5b9d2a0c4f47d1b9e3a6c8d0f2e4a6';
const bob = { id: 'dr.bob', role: 'physician', organisation: 'consumer', device: 'ab'.repeat(32) };

let trust: TestTrust;
let view: PkiView;
let keys: Record<AuditedParty, SigningKey>;

/** A party's chain as its store makes it: records linked by hash, a checkpoint signed every `every`. */
async function chain(
  party: AuditedParty,
  entries: readonly AuditEntry[],
  start: number,
  every = 3,
): Promise<{ records: AuditRecord[]; checkpoints: Checkpoint[] }> {
  const records: AuditRecord[] = [];
  const checkpoints: Checkpoint[] = [];
  let head = { seq: 0, hash: GENESIS };
  for (const [i, e] of entries.entries()) {
    const r = await signRecord(nextRecord(e, head, party, new Date(start + i * 1000)), keys[party]);
    records.push(r);
    head = { seq: r.seq, hash: r.hash };
    if (r.seq % every === 0 || i === entries.length - 1) {
      const base = { seq: r.seq, hash: r.hash, time: r.time, party };
      const signature = toBase64Url(await keys[party].sign(checkpointMessage(base)));
      checkpoints.push({ ...base, keyId: keys[party].publicKey.keyIdHex, signature });
    }
  }
  return { records, checkpoints };
}

const T0 = Date.parse('2026-03-01T10:00:00.000Z');

const producerEntries: AuditEntry[] = [
  {
    event: '110106',
    subtype: 'outsourcing',
    action: 'C',
    outcome: 0,
    actor: { id: 'producer' },
    objects: [{ type: 'image', id: '3b1f6f0e-7c2d-4a55-9b1e-2f6d8c0a9e11' }],
    details: { cloud: 'cloud' },
  },
  {
    event: '110112',
    subtype: 'request-logged',
    action: 'R',
    outcome: 0,
    actor: bob,
    objects: [{ type: 'patient', id: PATIENT }],
    details: { operation: 'consult', purpose: 'treatment', emergency: false },
  },
  {
    event: '110112',
    subtype: 'policy-decision',
    action: 'R',
    outcome: 0,
    actor: bob,
    objects: [{ type: 'patient', id: PATIENT }],
    details: {
      decision: { decision: 'allow', rules: ['ATTENDING'] },
      resource: `study:${STUDY_UID}`,
    },
  },
  {
    event: '110103',
    subtype: 'ticket-issued',
    action: 'R',
    outcome: 0,
    actor: bob,
    objects: [
      { type: 'ticket', id: TICKET },
      { type: 'patient', id: PATIENT },
    ],
    details: { rules: ['ATTENDING'], images: 3 },
  },
];

const cloudEntries: AuditEntry[] = [
  {
    event: '110103',
    subtype: 'trace-inserted',
    action: 'U',
    outcome: 0,
    actor: { id: 'dr.bob', device: bob.device },
    objects: [{ type: 'ticket', id: TICKET }],
    details: { traces: ['cd'.repeat(32)] },
  },
  {
    event: '110103',
    subtype: 'retrieve',
    action: 'R',
    outcome: 0,
    actor: { id: 'dr.bob', device: bob.device },
    objects: [{ type: 'ticket', id: TICKET }],
    details: { images: 3 },
  },
];

const consumerEntries: AuditEntry[] = [
  {
    event: '110114',
    subtype: 'login',
    action: 'E',
    outcome: 0,
    actor: { id: 'dr.bob' },
    objects: [],
    details: {},
  },
];

/**
 * Three parties that serve what they store: a filtered trail (the producer's records naming the
 * patient, the others by ticket or clinician) and the whole chain, each with the party's own
 * verification. `lies` makes a party say its chain is intact whatever it holds.
 */
class Parties {
  readonly stored = new Map<AuditedParty, { records: AuditRecord[]; checkpoints: Checkpoint[] }>();
  lies = new Set<AuditedParty>();
  /** What the witness saw of each party: its checkpoints when the chains were made. */
  readonly witnessed = new Map<AuditedParty, Checkpoint[]>();
  /** Parties whose witness statement cannot be had. */
  unwitnessed = new Set<AuditedParty>();

  witness(party: AuditedParty): WitnessView | { unavailable: string } {
    if (this.unwitnessed.has(party)) return { unavailable: 'the witness cannot be reached' };
    const seen = (this.witnessed.get(party) ?? []).map((c) => ({ ...c, witnessedAt: c.time }));
    return {
      party,
      required: seen.at(-1) ?? null,
      first: seen[0] ?? null,
      checkpoints: seen,
      conflicts: [],
    };
  }

  private async trailOf(party: AuditedParty, filter: TrailFilter): Promise<PartyTrail> {
    const { records, checkpoints } = this.stored.get(party)!;
    const own = await verifyChain(party, records, checkpoints, async (id) =>
      id === keys[party].publicKey.keyIdHex ? keys[party].publicKey : undefined,
    );
    const verification = this.lies.has(party) ? { ...own, ok: true, breaks: [] } : own;
    const selected = filter.chain
      ? records
      : records.filter(
          (r) =>
            (filter.clinician && r.actor.id === filter.clinician) ||
            r.objects.some(
              (o) =>
                (o.type === 'patient' && filter.patients?.includes(o.id)) ||
                (o.type === 'ticket' && filter.tickets?.includes(o.id)),
            ),
        );
    return {
      party,
      verification,
      checkpoints,
      records: selected,
      complete: !!filter.chain,
      truncated: false,
    };
  }

  /** What `AuditorClient` does with them: merged trail by pseudonym, then each whole chain here. */
  client() {
    return {
      mergedTrail: async (f: MergedFilter) => {
        const producer = await this.trailOf('producer', {
          patients: f.patientId === 'LIDC-IDRI-0314' ? [PATIENT] : [],
        });
        const trails = [
          producer,
          await this.trailOf('cloud', { tickets: [TICKET] }),
          await this.trailOf('consumer', { clinician: 'dr.bob' }),
        ];
        return { ...mergeTrails(trails), trails };
      },
      verifyChain: async (party: AuditedParty) => {
        const t = await this.trailOf(party, { chain: true });
        return {
          local: await verifyTrail(view, t, this.witness(party)),
          remote: t.verification,
          trail: t,
        };
      },
    };
  }
}

let parties: Parties;

beforeAll(async () => {
  trust = await testTrust();
  view = await viewOf(trust.bundle);
  const signer = (o: { keys: CryptoKeyPair }) =>
    signingKeyFromCryptoKeys('ECDSA-P256', o.keys.privateKey, o.keys.publicKey);
  keys = {
    producer: trust.producer,
    cloud: trust.cloud,
    consumer: await signer(trust.pki.organisations.consumer),
  };
});

const fresh = async () => {
  parties = new Parties();
  parties.stored.set('producer', await chain('producer', producerEntries, T0));
  parties.stored.set('cloud', await chain('cloud', cloudEntries, T0 + 3500));
  parties.stored.set('consumer', await chain('consumer', consumerEntries, T0 - 2000));
  for (const [p, s] of parties.stored) parties.witnessed.set(p, [...s.checkpoints]);
};

/** Rewrites a stored record's details in place, as someone with write access to the database would. */
const rewrite = (party: AuditedParty, seq: number, details: Record<string, unknown>) => {
  const s = parties.stored.get(party)!;
  s.records = s.records.map((r) => (r.seq === seq ? { ...r, details } : r));
};

describe('the audit trail view', () => {
  it('validates what the auditor typed before anything is sent', () => {
    expect(trailFilter('patient', '  LIDC-IDRI-0314 ')).toEqual({ patientId: 'LIDC-IDRI-0314' });
    expect(trailFilter('study', STUDY_UID)).toEqual({ studyUid: STUDY_UID });
    expect(trailFilter('clinician', 'dr.bob')).toEqual({ clinician: 'dr.bob' });
    expect(trailFilter('ticket', TICKET.toUpperCase())).toEqual({ tickets: [TICKET] });
    for (const [kind, v] of [
      ['patient', ''],
      ['patient', 'x'.repeat(65)],
      ['patient', 'a\u0007b'],
      ['study', '1.2.x'],
      ['study', '1..2'],
      ['clinician', 'dr bob'],
      ['ticket', 'abc'],
      ['ticket', 'g'.repeat(32)],
    ] as const)
      expect(() => trailFilter(kind, v), `${kind} ${v}`).toThrow(QueryError);
  });

  it('merges the three parties in time order, every chain verified here and intact', async () => {
    await fresh();
    const { view: tv } = await verifiedTrail(parties.client(), { patientId: 'LIDC-IDRI-0314' });
    expect(tv.ok).toBe(true);
    expect(tv.rows.map((r) => `${r.party}:${r.subtype}`)).toEqual([
      'consumer:login',
      'producer:request-logged',
      'producer:policy-decision',
      'producer:ticket-issued',
      'cloud:trace-inserted',
      'cloud:retrieve',
    ]);
    expect(tv.rows.every((r) => r.breaks.length === 0)).toBe(true);
    const producer = tv.chains.find((c) => c.party === 'producer')!;
    expect(producer).toMatchObject({ ok: true, local: true, disagrees: false, records: 4 });
    expect(producer.text).toBe(
      "producer: 4 records, 2 signed checkpoint(s), verified here with the producer's certified key: chain intact up to record 4; reaches the witnessed record 4",
    );
    // Details as exports carry them: the Study Instance UID the policy saw is a reference.
    const decision = tv.rows.find((r) => r.subtype === 'policy-decision')!;
    expect(decision.details).toContain(`study-ref:${studyRef(STUDY_UID)}`);
    expect(decision.details).not.toContain(STUDY_UID);
    expect(tv.rows.find((r) => r.subtype === 'request-logged')!.actor).toBe(
      'dr.bob (physician) · consumer',
    );
  });

  it('a rewritten record shows its seq and kind on exactly its row, even when the party vouches for itself', async () => {
    await fresh();
    rewrite('producer', 2, { operation: 'consult', purpose: 'research', emergency: false });
    parties.lies.add('producer');
    const { view: tv } = await verifiedTrail(parties.client(), { patientId: 'LIDC-IDRI-0314' });
    expect(tv.ok).toBe(false);
    const broken = tv.rows.filter((r) => r.breaks.length);
    expect(broken.map((r) => [r.party, r.seq, r.breaks.map((b) => b.kind)])).toEqual([
      ['producer', 2, ['hash-mismatch']],
    ]);
    const producer = tv.chains.find((c) => c.party === 'producer')!;
    expect(producer.ok).toBe(false);
    expect(producer.disagrees).toBe(true);
    expect(producer.text).toContain('1 break(s): record 2 hash-mismatch');
    expect(producer.text).toContain('the producer says of itself: intact');
    expect(tv.chains.filter((c) => c.ok).map((c) => c.party)).toEqual(['cloud', 'consumer']);

    // The table: the break's sentence on that row, the row marked.
    const html = renderToStaticMarkup(createElement(TrailTable, { rows: tv.rows }));
    expect(html).toMatch(
      /data-party="producer" data-seq="2" data-subtype="request-logged" data-breaks="hash-mismatch"/,
    );
    expect(html).toContain(
      'data-kind="hash-mismatch">⚠ record 2: hash-mismatch — record 2 was rewritten: its content no longer matches its hash</div>',
    );
  });

  it('names a break outside the selection, and a checkpoint signed by a key not certified for the party', async () => {
    await fresh();
    // The outsourcing record (seq 1) names no patient: it is not in the patient's trail.
    rewrite('producer', 1, { cloud: 'elsewhere' });
    // The consumer's checkpoint re-signed with the cloud's key (certified, but for another party),
    // before the witness saw any of the consumer's (past a witnessed one, checkpoints in the party's
    // database are not checked again: the witness vouches for the chain up to there).
    parties.witnessed.set('consumer', []);
    const consumer = parties.stored.get('consumer')!;
    const c = consumer.checkpoints[0]!;
    const base = { seq: c.seq, hash: c.hash, time: c.time, party: 'consumer' };
    consumer.checkpoints = [
      {
        ...base,
        keyId: keys.cloud.publicKey.keyIdHex,
        signature: toBase64Url(await keys.cloud.sign(checkpointMessage(base))),
      },
    ];
    const { view: tv } = await verifiedTrail(parties.client(), { patientId: 'LIDC-IDRI-0314' });
    const producer = tv.chains.find((ch) => ch.party === 'producer')!;
    expect(producer.outside.map((b) => `${b.seq}:${b.kind}`)).toEqual(['1:hash-mismatch']);
    // Only seq 1's content changed (its stored hash did not): the records shown are all sound.
    expect(tv.rows.filter((r) => r.party === 'producer').every((r) => !r.breaks.length)).toBe(true);
    const cons = tv.chains.find((ch) => ch.party === 'consumer')!;
    expect(cons.breaks.map((b) => `${b.seq}:${b.kind}`)).toEqual(['1:checkpoint-unknown-key']);
    expect(tv.rows.find((r) => r.party === 'consumer')!.breaks[0]?.kind).toBe(
      'checkpoint-unknown-key',
    );
  });

  it('a chain cut after the witness saw it is truncated; one the witness could not vouch for is not verified', async () => {
    await fresh();
    // The producer's last record deleted with its checkpoint: a consistent chain, one record short.
    const p = parties.stored.get('producer')!;
    p.records = p.records.slice(0, -1);
    p.checkpoints = p.checkpoints.filter((c) => c.seq < 4);
    parties.unwitnessed.add('consumer');
    const { view: tv } = await verifiedTrail(parties.client(), { patientId: 'LIDC-IDRI-0314' });
    const producer = tv.chains.find((ch) => ch.party === 'producer')!;
    expect(producer.breaks.map((b) => `${b.seq}:${b.kind}`)).toEqual(['4:truncated']);
    expect(producer.text).toContain('1 break(s): record 4 truncated');
    expect(producer.ok).toBe(false);
    const consumer = tv.chains.find((ch) => ch.party === 'consumer')!;
    expect(consumer.breaks).toEqual([]);
    expect(consumer.ok).toBe(false);
    expect(consumer.text).toContain(
      'chain intact up to record 1; NOT compared with the witness (the witness cannot be reached)',
    );
    expect(tv.chains.find((ch) => ch.party === 'cloud')!.ok).toBe(true);
    expect(tv.ok).toBe(false);
  });

  it('exports the shown selection as valid DICOM audit messages and as CSV, named without what was typed', async () => {
    await fresh();
    const { view: tv } = await verifiedTrail(parties.client(), { patientId: 'LIDC-IDRI-0314' });
    const shown = selectRows(tv, new Set(['producer', 'cloud']));
    expect(shown.map((r) => r.party)).not.toContain('consumer');
    const now = new Date('2026-03-01T12:34:56.789Z');
    const xml = exportSelection(shown, 'xml', 'patient', now);
    expect(xml.name).toBe('ztv-audit-patient-20260301T123456Z.xml');
    const lines = xml.text.trimEnd().split('\n');
    expect(lines).toHaveLength(shown.length);
    const r = await validateAuditMessages(lines);
    expect(r.errors, r.rawOutput).toEqual([]);
    expect(xml.text).not.toContain(STUDY_UID);
    const csv = exportSelection(shown, 'csv', 'patient', now);
    expect(csv.type).toBe('text/csv');
    const table = parseCsv(csv.text);
    expect(table.slice(1).map((row) => `${row[0]}:${row[1]}`)).toEqual(
      shown.map((row) => `${row.party}:${row.seq}`),
    );
  });

  it('summarises a party with no local report by its own word, and never calls that verified', () => {
    const merged = mergeTrails([
      {
        party: 'producer',
        verification: { ok: true, party: 'producer', records: 0, checkpoints: 0, breaks: [] },
        checkpoints: [],
        records: [],
        complete: false,
        truncated: false,
      },
    ]);
    const tv = trailView(merged, []);
    expect(tv.chains[0]).toMatchObject({ local: false, ok: true });
    expect(tv.chains[0]!.text).toContain('as the producer reports it (not verified here)');
    expect(tv.ok).toBe(false);
  });
});

describe('the audit trail in an auditor’s words', () => {
  const record = (party: string, seq: number, e: AuditEntry): AuditRecord => ({
    ...e,
    seq,
    time: new Date(T0 + seq * 1000).toISOString(),
    party,
    prev: GENESIS,
    hash: GENESIS,
  });
  const refused = record('producer', 5, {
    event: '110112',
    subtype: 'policy-decision',
    action: 'R',
    outcome: 4,
    actor: bob,
    objects: [{ type: 'patient', id: PATIENT }],
    details: {
      decision: {
        decision: 'deny',
        rules: ['NO-ADMIN'],
        errors: ['no rule permits it'],
        refusedStatements: [],
        request: {
          resource: `study:${STUDY_UID}`,
          context: { purpose: 'ETREAT', justification: 'Unconscious patient, trauma CT' },
        },
      },
    },
  });
  const images = ['11111111-aaaa', '22222222-bbbb', '33333333-cccc'];
  const traced = record('cloud', 6, {
    event: '110103',
    subtype: 'trace-inserted',
    action: 'R',
    outcome: 0,
    actor: { id: 'dr.bob', device: bob.device },
    objects: [
      { type: 'ticket', id: TICKET },
      ...images.map((id) => ({ type: 'image' as const, id })),
    ],
    details: { traces: ['cd'.repeat(32)], rules: ['RELEASE'] },
  });
  const alert = record('producer', 7, {
    event: '110113',
    subtype: 'session-refused',
    action: 'E',
    outcome: 8,
    actor: bob,
    objects: [],
    details: {
      reason: 'bad-request',
      message: 'the purpose of use TRAIN is not in the vocabulary',
    },
  });
  const merged = {
    entries: [refused, traced, alert].map((r) => ({ party: r.party, record: r })),
    chains: [],
    ok: true,
  } as unknown as MergedTrail;
  const names = organisationNames([{ id: 'consumer', name: 'Riverside Consumer Hospital' }]);
  const tv = trailView(merged, [], names);
  const [deny, trace, refusal] = tv.rows as [TrailRow, TrailRow, TrailRow];

  it('says "refused", not "minor failure"; a refusal at the edge is a security alert', () => {
    expect(deny.outcome).toBe('refused');
    expect(trace.outcome).toBe('succeeded');
    expect(refusal.outcome).toBe('refused (security alert)');
    expect(outcomeText({ outcome: 8, event: '110103' })).toBe('failed');
  });

  it('names the hospital by its organisation name', () => {
    expect(deny.actor).toBe('dr.bob (physician) · Riverside Consumer Hospital');
  });

  it('shows the details as fields: decision, rules, purpose, justification, reasons', () => {
    expect(Object.fromEntries(deny.fields.map((f) => [f.label, f.value]))).toEqual({
      Decision: 'refused',
      Rules: 'NO-ADMIN',
      Purpose: 'ETREAT (emergency treatment)',
      Justification: 'Unconscious patient, trauma CT',
      Reasons: 'no rule permits it',
      Resource: `study-ref:${studyRef(STUDY_UID)}`,
    });
    expect(refusal.fields).toEqual([
      { label: 'Reason', value: 'bad-request' },
      { label: 'Message', value: 'the purpose of use TRAIN is not in the vocabulary' },
    ]);
  });

  it('collapses the image list of a trace record to a count that opens', () => {
    expect(trace.objects).toBe(`ticket:${TICKET}`);
    expect(trace.images).toEqual(images);
    const html = renderToStaticMarkup(createElement(TrailTable, { rows: tv.rows }));
    expect(html).toContain('data-testid="row-images" data-count="3"><summary>3 images</summary>');
    // The ids stay on the page (closed), the raw details too, for search and for the export.
    for (const id of images) expect(html).toContain(`<li>${id}</li>`);
    expect(html).toContain('cd'.repeat(32));
    expect(html).not.toMatch(/minor failure/);
  });
});
