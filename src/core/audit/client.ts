/**
 * The auditor's side of the platform, for the command line and the auditor view alike (fetch and
 * WebCrypto only): authenticated sessions with the producer, the cloud and the consumer hospital using
 * the auditor's device certificate; trace resolution; each party's trail with its chain verification,
 * the merged trail of all three for a patient, a study, a clinician or a ticket; whole chains verified
 * again here with each party's certified key and against the witness's statement (fetched through
 * the consumer hospital, signed by the authority over a nonce of ours); break-glass reviews; and
 * `traceLeak`, the whole tracing procedure for a leaked file. Every call declares the purpose of
 * use `HOPERAT` (healthcare operations), which the policy requires.
 */
import { randomBytes, toHex } from '../bytes.ts';
import { FederationClient, type DeviceKeys } from '../client/federation.ts';
import { PartySessions } from '../client/sessions.ts';
import {
  auditPseudonym,
  auditTrace,
  auditTrail,
  breakGlassPending,
  breakGlassReview,
  producerAuditTrail,
  type PendingReview,
  type ReviewAnswer,
  type TraceResolution,
} from '../operations/audit.ts';
import { createCsr, generateEncryptionKeys, generateSigningKeys } from '../pki/issue.ts';
import { pkiResolver, type PkiView } from '../pki/resolver.ts';
import { X509Certificate } from '../pki/x509.ts';
import { examineLeak, type LeakExamination, type LeakStatus } from './leak.ts';
import type { AuditRecord } from './record.ts';
import {
  checkpointKeys,
  mergeTrails,
  readTrail,
  referencesOf,
  verifyTrail,
  type MergedTrail,
  type PartyTrail,
  type TrailFilter,
} from './trail.ts';
import type { ChainReport } from './verify.ts';
import { mergeViews, verifyStatement, type WitnessStatement, type WitnessView } from './witness.ts';

export type { PendingReview, TraceResolution } from '../operations/audit.ts';

export type AuditedParty = 'producer' | 'cloud' | 'consumer';
export const AUDITED_PARTIES: readonly AuditedParty[] = ['producer', 'cloud', 'consumer'];

export interface AuditEndpoints {
  readonly producer: string;
  readonly cloud?: string;
  readonly consumer?: string;
  /** Where the witness's statements are served (default: the consumer hospital, which relays them). */
  readonly witness?: string;
}

export type WitnessLookup = WitnessView | { readonly unavailable: string };

/**
 * The witness's statement about a party, fetched from `base` (`/witness/:party?nonce=`) and verified
 * here: the authority's signature with its certified key, our fresh nonce, the party's signature on
 * each checkpoint listed. Never throws: what went wrong is the `unavailable` reason.
 */
export async function fetchWitnessView(
  base: string,
  party: string,
  trust: PkiView,
  f: typeof fetch = fetch,
): Promise<WitnessLookup> {
  const nonce = toHex(randomBytes(16));
  let statement: WitnessStatement;
  try {
    const r = await f(`${base}/witness/${party}?nonce=${nonce}`);
    if (!r.ok)
      return { unavailable: `the witness's statement could not be fetched (HTTP ${r.status})` };
    statement = (await r.json()) as WitnessStatement;
  } catch (e) {
    return { unavailable: `the witness cannot be reached (${(e as Error).message})` };
  }
  try {
    const v = await verifyStatement(
      statement,
      { party, nonce },
      checkpointKeys(trust, 'authority'),
      checkpointKeys(trust, party),
    );
    return v.ok ? v.view : { unavailable: `the witness's statement is refused: ${v.reason}` };
  } catch (e) {
    return { unavailable: `the witness's statement is malformed (${(e as Error).message})` };
  }
}

/** The whole answer about a leaked file: the keyless examination and what the producer's log says. */
export interface LeakReport {
  readonly status: LeakStatus;
  readonly examination: Omit<LeakExamination, 'verdict'> & { readonly summary: string };
  readonly resolution?: TraceResolution;
}

/** What the trail of a patient or a study may name besides the producer's own identifiers. */
export interface MergedFilter extends TrailFilter {
  /** A patient id as the producer knows it (mapped to its pseudonym by the producer). */
  readonly patientId?: string;
  /** A Study Instance UID (mapped to its reference). */
  readonly studyUid?: string;
}

/** Signs in at the hospital and enrolls a fresh device: non-extractable keys made here. */
export async function enrollDevice(
  consumer: string,
  token: string,
  label = 'ztv auditor device',
  f: typeof fetch = fetch,
): Promise<DeviceKeys & { readonly serial: string }> {
  const signing = await generateSigningKeys(false);
  const encryption = await generateEncryptionKeys(false);
  const csr = await createCsr(signing, encryption.publicKey, label);
  const r = await FederationClient.enrolDevice(consumer, token, csr, f);
  return {
    signing,
    encryption,
    chain: r.chain,
    serial: new X509Certificate(r.chain[0]!).serialNumber,
  };
}

export class AuditorClient {
  private readonly sessions: PartySessions<AuditedParty>;

  constructor(
    readonly endpoints: AuditEndpoints,
    device: Pick<DeviceKeys, 'signing' | 'chain'>,
    private readonly trust: () => PkiView,
    private readonly f: typeof fetch = fetch,
    readonly purpose = 'HOPERAT',
  ) {
    const { producer, cloud, consumer } = endpoints;
    this.sessions = new PartySessions<AuditedParty>(
      { producer, ...(cloud ? { cloud } : {}), ...(consumer ? { consumer } : {}) },
      device,
      trust,
      f,
    );
  }

  /** The producer's log on a trace (hex): the ticket and its requester, or unknown. */
  resolveTrace(trace: string): Promise<TraceResolution> {
    return this.sessions.call('producer', auditTrace, {
      purpose: this.purpose,
      trace: trace.toLowerCase(),
    });
  }

  /** The pseudonym under which the producer's records name a patient. */
  async pseudonym(patient: string): Promise<string> {
    return (
      await this.sessions.call('producer', auditPseudonym, { purpose: this.purpose, patient })
    ).pseudonym;
  }

  /** One party's trail: the records the filter selects and the party's verification of its chain. */
  trail(party: AuditedParty, filter: TrailFilter = {}): Promise<PartyTrail> {
    return this.sessions
      .streamJson(party, auditTrail, { purpose: this.purpose, ...filter })
      .then(readTrail);
  }

  /**
   * One party's whole chain, verified again here with the party's certified key and against the
   * witness: `local` is this verification, `remote` the party's own; they differ only if the service
   * lies about itself. The witness is asked before the chain is read (the chain must reach what it
   * had seen by then) and after (the checkpoint the read made, and any conflict it raised).
   */
  async verifyChain(
    party: AuditedParty,
  ): Promise<{ local: ChainReport; remote: ChainReport; trail: PartyTrail }> {
    const base = this.endpoints.witness ?? this.endpoints.consumer;
    const witness = () =>
      base
        ? fetchWitnessView(base, party, this.trust(), this.f)
        : Promise.resolve<WitnessLookup>({ unavailable: 'no witness URL was given' });
    const before = await witness();
    const trail = await this.trail(party, { chain: true });
    const after = await witness();
    const view =
      'unavailable' in before
        ? before
        : mergeViews(before, 'unavailable' in after ? undefined : after);
    return {
      local: await verifyTrail(this.trust(), trail, view),
      remote: trail.verification,
      trail,
    };
  }

  /**
   * The merged trail of the producer, the cloud and the consumer for a patient, a study, a clinician
   * or tickets: the producer's records select the tickets and requesters, which select the cloud's
   * records (by ticket) and the consumer's (by requester).
   */
  async mergedTrail(filter: MergedFilter): Promise<MergedTrail & { trails: PartyTrail[] }> {
    const { patientId, studyUid, ...rest } = filter;
    const producer = await this.sessions.streamJson('producer', producerAuditTrail, {
      purpose: this.purpose,
      ...rest,
      ...(patientId ? { patientIds: [patientId] } : {}),
      ...(studyUid ? { studyUids: [studyUid] } : {}),
    });
    const refs = referencesOf(producer.records);
    const tickets = [...new Set([...(filter.tickets ?? []), ...refs.tickets])];
    const clinicians = filter.clinician ? [filter.clinician] : refs.clinicians;
    const window = {
      ...(filter.from ? { from: filter.from } : {}),
      ...(filter.to ? { to: filter.to } : {}),
    };
    const trails: PartyTrail[] = [producer];
    if (this.endpoints.cloud) {
      // A clinician's trail at the cloud is everything they did there (refused tickets too); otherwise
      // the cloud's records are those of the tickets (and images) the producer's records name.
      const cloudFilter: TrailFilter | undefined = filter.clinician
        ? { ...window, clinician: filter.clinician }
        : tickets.length || filter.images?.length
          ? {
              ...window,
              ...(tickets.length ? { tickets } : {}),
              ...(filter.images?.length ? { images: filter.images } : {}),
            }
          : undefined;
      if (cloudFilter) trails.push(await this.trail('cloud', cloudFilter));
    }
    if (this.endpoints.consumer && clinicians.length) {
      const records: AuditRecord[] = [];
      let consumer: PartyTrail | undefined;
      for (const clinician of clinicians.slice(0, 32)) {
        consumer = await this.trail('consumer', { ...window, clinician });
        records.push(...consumer.records);
      }
      if (consumer) trails.push({ ...consumer, records });
    }
    return { ...mergeTrails(trails), trails };
  }

  pendingBreakGlass(): Promise<{ readonly pending: readonly PendingReview[] }> {
    return this.sessions.call('producer', breakGlassPending, { purpose: this.purpose });
  }

  review(ticket: string, outcome: 'justified' | 'unjustified'): Promise<ReviewAnswer> {
    return this.sessions.call('producer', breakGlassReview, {
      purpose: this.purpose,
      ticket,
      outcome,
    });
  }

  /**
   * The tracing procedure: examine the file without any key against the federation's PKI; a forged
   * or missing trace stops there; a verified one is resolved through the producer's log.
   */
  async traceLeak(bytes: Uint8Array, what = 'the file'): Promise<LeakReport> {
    const exam = await examineLeak(bytes, pkiResolver(this.trust()), what);
    const { verdict, ...rest } = exam;
    const examination = { ...rest, summary: verdict.summary };
    if (exam.trace !== 'verified')
      return { status: exam.trace === 'forged' ? 'forged' : 'untraced', examination };
    const resolution = await this.resolveTrace(exam.traceId!);
    return { status: resolution.known ? 'resolved' : 'unknown', examination, resolution };
  }

  async close(): Promise<void> {
    await this.sessions.close();
  }
}
