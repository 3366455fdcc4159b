/**
 * The clinician's side of the protocol, for the browser viewer and for tests alike (fetch and WebCrypto
 * only): sign in to the hospital, get role assignments, fetch and pin the federation's trust material,
 * open authenticated sessions with the producer and the cloud, consult (receive the blind ticket), open
 * the key part with the device's key, redeem the cloud part and stream the traced instances.
 */
import { X509Certificate, X509Crl } from '../pki/x509.ts';
import type { FlattenedJWS } from 'jose';
import { ZtvError } from '../errors.ts';
import { toHex } from '../bytes.ts';
import {
  consult,
  search,
  type ConsultAnswer,
  type ConsultRequest,
  type SearchAnswer,
} from '../operations/consultation.ts';
import { qido, type DicomJson } from '../operations/qido.ts';
import { revokeDelegation, type RevocationAnswer } from '../operations/delegation.ts';
import { redeem, retrieve, type Redemption } from '../operations/redemption.ts';
import type { PkiView } from '../pki/resolver.ts';
import { verifyTrustGroup } from '../pki/trust-group.ts';
import { openKeysPart, type Ticket } from '../ticket/ticket.ts';
import { isCut, json, reaching, StreamCut, type Endpoints } from './http.ts';
import { openRetrieval, type RetrievalOpener, type Retrieved } from './retrieval.ts';
import { PartySessions } from './sessions.ts';

export { HttpFailure, NetworkFailure, StreamCut, poster, type Endpoints } from './http.ts';
export type { ConsultAnswer, ConsultRequest, SearchAnswer } from '../operations/consultation.ts';
export type { DicomJson } from '../operations/qido.ts';
export type { RetrievalOpener, Retrieved } from './retrieval.ts';

export interface DeviceKeys {
  readonly signing: CryptoKeyPair;
  readonly encryption: CryptoKeyPair;
  /** PEM: device certificate, hospital device CA. */
  readonly chain: readonly string[];
}

/** The federation's trust material as the hospital publishes it (PEM and the signed trust group). */
export interface TrustMaterial {
  readonly root: string;
  readonly intermediates: readonly string[];
  readonly organisations: readonly string[];
  readonly crls: readonly string[];
  readonly trustGroup: FlattenedJWS;
}

const PEM_LIST_MAX = 256;

function checkMaterial(t: unknown): TrustMaterial {
  const m = t as Partial<TrustMaterial>;
  const pems = (v: unknown): v is string[] =>
    Array.isArray(v) && v.length <= PEM_LIST_MAX && v.every((p) => typeof p === 'string');
  if (
    typeof m?.root !== 'string' ||
    !pems(m.intermediates) ||
    !pems(m.organisations) ||
    !pems(m.crls) ||
    typeof m.trustGroup !== 'object' ||
    m.trustGroup === null
  )
    throw new ZtvError('integrity', 'the hospital serves malformed trust material');
  return m as TrustMaterial;
}

/** The trust material the consumer hospital serves at /trust, shape-checked (not yet pinned). */
export async function fetchTrustMaterial(
  consumer: string,
  f: typeof fetch = fetch,
): Promise<TrustMaterial> {
  return checkMaterial(await json(await reaching(f, { consumer })(`${consumer}/trust`)));
}

/** SHA-256 of a certificate's DER, hex: the root's fingerprint the viewer pins. */
export async function certificateSha256(pem: string): Promise<string> {
  return toHex(new Uint8Array(await new X509Certificate(pem).getThumbprint('SHA-256')));
}

/** How the root is pinned: by its PEM, or by the SHA-256 of its DER (hex). */
export type RootPin = { readonly pem: string } | { readonly sha256: string };

/**
 * A PkiView from trust material, refusing it unless the root is the pinned one and the trust group
 * is signed by that root. Without a pin the served root is taken as it is (first use).
 */
export async function trustView(material: TrustMaterial, pin?: RootPin): Promise<PkiView> {
  const t = checkMaterial(material);
  if (pin && 'pem' in pin && pin.pem.replace(/\s/g, '') !== t.root.replace(/\s/g, ''))
    throw new ZtvError('integrity', 'the hospital serves another root than the pinned one');
  if (pin && 'sha256' in pin && (await certificateSha256(t.root)) !== pin.sha256.toLowerCase())
    throw new ZtvError('integrity', 'the hospital serves another root than the pinned one');
  const root = new X509Certificate(t.root);
  return {
    root,
    intermediates: t.intermediates.map((p) => new X509Certificate(p)),
    organisations: t.organisations.map((p) => new X509Certificate(p)),
    crls: t.crls.map((p) => new X509Crl(p)),
    trustGroup: await verifyTrustGroup(t.trustGroup, root),
  };
}

/** The hospital's view of the federation's trust (root, CRLs, trust group), checked against the root. */
export async function fetchTrust(
  consumer: string,
  pinnedRoot?: string,
  f: typeof fetch = fetch,
): Promise<PkiView> {
  return trustView(
    await fetchTrustMaterial(consumer, f),
    pinnedRoot ? { pem: pinnedRoot } : undefined,
  );
}

export interface RetrieveOptions {
  /**
   * Waits before each attempt to resume a cut retrieval; as many attempts as entries, counted since
   * the last instance that arrived (default ~30 s in all, long enough for a supervised restart).
   */
  readonly resumeBackoffMs?: readonly number[];
}

const RESUME_BACKOFF_MS: readonly number[] = [250, 500, 1000, 2000, 4000, 8000, 15_000];

/** Waits `ms`, or less when `signal` aborts. */
const pause = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

export class FederationClient {
  private readonly sessions: PartySessions<'producer' | 'cloud'>;
  private readonly f: typeof fetch;

  /** Where a retrieval's frames are opened: in this thread unless another opener is given. */
  private readonly openRetrieval: RetrievalOpener;

  /**
   * `opts.openRetrieval`: opens retrievals elsewhere — the viewer's stream worker, so that the
   * sealed frames are fetched and opened off the page's thread (`src/viewer/pipeline/stream.ts`).
   */
  constructor(
    readonly endpoints: Endpoints,
    private readonly device: DeviceKeys,
    trust: () => PkiView,
    f: typeof fetch = fetch,
    opts: { readonly openRetrieval?: RetrievalOpener } = {},
  ) {
    this.f = reaching(f, endpoints);
    const inThread = this.f;
    this.openRetrieval =
      opts.openRetrieval ??
      ((grant, base, opened, signal) => openRetrieval(grant, base, opened, inThread, signal));
    this.sessions = new PartySessions(
      { producer: endpoints.producer, cloud: endpoints.cloud },
      device,
      trust,
      this.f,
    );
  }

  /** The device thumbprint: what tickets are bound to. */
  async deviceId(): Promise<string> {
    const cert = new X509Certificate(this.device.chain[0]!);
    return toHex(new Uint8Array(await cert.getThumbprint('SHA-256')));
  }

  static async login(
    consumer: string,
    user: string,
    password: string,
    f: typeof fetch = fetch,
  ): Promise<{
    token: string;
    clinician: { id: string; name: string; role: string; hospital: string };
  }> {
    const r = (await json(
      await reaching(f, { consumer })(`${consumer}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, password }),
      }),
    )) as {
      token?: unknown;
      clinician?: { id: string; name: string; role: string; hospital: string };
    };
    if (typeof r.token !== 'string' || typeof r.clinician !== 'object')
      throw new ZtvError('bad-input', 'the hospital answered the sign-in without a token');
    return { token: r.token, clinician: r.clinician };
  }

  /** Ends a sign-in at the hospital (the token stops working everywhere). */
  static async logout(consumer: string, token: string, f: typeof fetch = fetch): Promise<void> {
    await json(
      await reaching(f, { consumer })(`${consumer}/logout`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      }),
    );
  }

  /** Enrols a device: the CSR of its (non-extractable) keys, certified by the hospital. */
  static async enrolDevice(
    consumer: string,
    token: string,
    csr: string,
    f: typeof fetch = fetch,
  ): Promise<{ chain: string[]; thumbprint: string }> {
    const r = (await json(
      await reaching(f, { consumer })(`${consumer}/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ csr }),
      }),
    )) as { chain?: unknown; thumbprint?: unknown };
    if (
      !Array.isArray(r.chain) ||
      r.chain.length < 1 ||
      !r.chain.every((p) => typeof p === 'string') ||
      typeof r.thumbprint !== 'string'
    )
      throw new ZtvError('bad-input', 'the hospital answered the enrollment without a chain');
    return { chain: r.chain as string[], thumbprint: r.thumbprint };
  }

  async roleAssignments(token: string): Promise<string[]> {
    const r = (await json(
      await this.f(`${this.endpoints.consumer}/role-assignments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      }),
    )) as { statements: string[] };
    return r.statements;
  }

  /** Opens the sessions ahead of time (the handshakes then cost nothing when the clinician asks). */
  async connect(): Promise<void> {
    await Promise.all([this.sessions.session('producer'), this.sessions.session('cloud')]);
  }

  search(purpose: string, roleAssignments: readonly string[] = []): Promise<SearchAnswer> {
    return this.sessions.call('producer', search, { purpose, roleAssignments });
  }

  /**
   * QIDO-RS at the producer (`/studies?PatientID=…&StudyDate=…`, `/studies/{uid}/series`, `/series`):
   * the DICOM JSON of the matches among the studies its policy lists for this clinician.
   */
  async qido(
    resource: string,
    purpose: string,
    roleAssignments: readonly string[] = [],
  ): Promise<DicomJson[]> {
    return (await this.sessions.call('producer', qido, { resource, purpose, roleAssignments }))
      .matches;
  }

  consult(req: ConsultRequest): Promise<ConsultAnswer> {
    return this.sessions.call('producer', consult, req);
  }

  /** Revokes, at the producer, a delegation this device's clinician signed (by its `jti`). */
  revokeDelegation(delegation: string): Promise<RevocationAnswer> {
    return this.sessions.call('producer', revokeDelegation, { delegation });
  }

  /** Opens the ticket's key part with this device's (non-extractable) encryption key. */
  async openKeys(
    ticket: Ticket,
    resolveProducer: Parameters<typeof openKeysPart>[1]['resolveProducer'],
  ): Promise<Map<string, Uint8Array>> {
    const { keys } = await openKeysPart(ticket.keys, {
      resolveProducer,
      decryptionKey: this.device.encryption.privateKey,
      deviceId: await this.deviceId(),
    });
    return keys;
  }

  /** Redeems the ticket's cloud part; `first` names the images to be streamed first, in order. */
  redeem(ticket: Ticket, first?: readonly string[]): Promise<Redemption> {
    return this.sessions.call('cloud', redeem, {
      ticket: ticket.cloud,
      ...(first && first.length > 0 ? { first: [...first] } : {}),
    });
  }

  /**
   * Streams the traced instances of a redemption, one complete instance at a time; `signal` stops
   * the transfer (the clinician closed the study). A stream cut by the transport (the cloud died,
   * the connection dropped) resumes at the next instance of the same redemption — no new redemption,
   * nothing received twice — after a back-off, while the redemption is valid; when it cannot, the
   * failure is a `StreamCut` that says how much had arrived.
   */
  async *retrieve(
    redemption: string,
    signal?: AbortSignal,
    opts: RetrieveOptions = {},
  ): AsyncGenerator<Retrieved> {
    const backoff = opts.resumeBackoffMs ?? RESUME_BACKOFF_MS;
    let received = 0;
    let bytes = 0;
    let attempt = 0;
    for (;;) {
      const body = received > 0 ? { redemption, from: received } : { redemption };
      try {
        const instances = this.sessions.streamWith('cloud', retrieve, body, (grant, base, opened) =>
          this.openRetrieval(grant, base, opened, signal),
        );
        for await (const got of instances) {
          received++;
          bytes += got.bytes.length;
          attempt = 0;
          yield got;
        }
        return;
      } catch (e) {
        if (signal?.aborted || !isCut(e)) throw e;
        if (attempt >= backoff.length)
          throw new StreamCut('cloud', 'the retrieval', received, bytes, e);
        await pause(backoff[attempt++]!, signal);
        if (signal?.aborted) throw e;
      }
    }
  }

  async close(): Promise<void> {
    await this.sessions.close();
  }
}
