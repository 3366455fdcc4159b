/**
 * The clinician's side of the protocol, for the browser viewer and for tests alike (fetch and WebCrypto
 * only): sign in to the hospital, get role assignments, fetch and pin the federation's trust material,
 * open authenticated sessions with the producer and the cloud, consult (receive the blind ticket), open
 * the key part with the device's key, redeem the cloud part and stream the traced instances.
 */
import { X509Certificate, X509Crl } from '../pki/x509.ts';
import type { FlattenedJWS } from 'jose';
import { ZtvError } from '../errors.ts';
import { signingKeyFromCryptoKeys } from '../crypto/keys.ts';
import { toHex } from '../bytes.ts';
import type { PkiView } from '../pki/resolver.ts';
import { verifyTrustGroup } from '../pki/trust-group.ts';
import { organisationValidator } from '../session/peers.ts';
import { SessionClient, type Post, type Sealed } from '../session/protocol.ts';
import { openKeysPart, type Ticket } from '../ticket/ticket.ts';

export interface Endpoints {
  readonly consumer: string;
  readonly producer: string;
  readonly cloud: string;
}

export interface DeviceKeys {
  readonly signing: CryptoKeyPair;
  readonly encryption: CryptoKeyPair;
  /** PEM: device certificate, hospital device CA. */
  readonly chain: readonly string[];
}

export class HttpFailure extends ZtvError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super('bad-input', message);
  }
}

/** A party could not be reached at all (down, wrong address, refused by the browser). */
export class NetworkFailure extends Error {
  constructor(
    readonly party: string,
    readonly url: string,
  ) {
    super(`cannot reach the ${party} at ${url}`);
    this.name = 'NetworkFailure';
  }
}

const PARTIES: readonly (keyof Endpoints)[] = ['consumer', 'producer', 'cloud'];

/** A fetch that names the party it could not reach instead of the browser's bare TypeError. */
function reaching(f: typeof fetch, endpoints?: Partial<Endpoints>): typeof fetch {
  return async (input, init) => {
    try {
      return await f(input, init);
    } catch (e) {
      if ((e as Error).name === 'AbortError' || e instanceof NetworkFailure) throw e;
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const party =
        PARTIES.find((p) => endpoints?.[p] && url.startsWith(endpoints[p]!)) ?? 'server';
      throw new NetworkFailure(party, new URL(url).origin);
    }
  };
}

async function json(r: Response): Promise<unknown> {
  const body = (await r.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!r.ok)
    throw new HttpFailure(
      r.status,
      body.error ?? 'error',
      body.message ?? `${r.url} answered ${r.status}`,
    );
  return body;
}

export const poster =
  (base: string, f: typeof fetch = fetch): Post =>
  async (path, body) =>
    json(
      await reaching(f)(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }),
    );

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

export interface ConsultRequest {
  readonly patient: string;
  readonly study?: string;
  readonly purpose: string;
  readonly emergencyJustification?: string;
  readonly roleAssignments?: readonly string[];
  readonly delegations?: readonly (readonly string[])[];
}

export interface ConsultAnswer {
  readonly ticket: Ticket;
  /** The trace (hex) this ticket asks the cloud to insert: the viewer checks it is there. */
  readonly trace: string;
  readonly study: { uid: string; description: string; date: string; modality: string };
  readonly series: {
    uid: string;
    number: number;
    description: string;
    modality: string;
    instances: { id: string; number: number; position: number | null }[];
  }[];
  readonly decision: { rules: string[]; obligations: string[] };
}

/**
 * Bytes arriving in chunks, taken out by exact lengths: each byte is copied once, into the buffer
 * that keeps it (concatenating chunk by chunk would copy a 500 kB instance a dozen times over).
 */
class ChunkQueue {
  private readonly chunks: Uint8Array[] = [];
  private head = 0;
  length = 0;

  push(c: Uint8Array): void {
    if (c.length === 0) return;
    this.chunks.push(c);
    this.length += c.length;
  }

  /**
   * The next `n` bytes (n ≤ length), removed from the queue: a view when they lie in one chunk (the
   * chunks are never written to), otherwise a copy.
   */
  take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.skip(first, n);
      return out;
    }
    const out = new Uint8Array(n);
    for (let off = 0; off < n;) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, n - off);
      out.set(c.subarray(this.head, this.head + k), off);
      off += k;
      this.skip(c, k);
    }
    return out;
  }

  /** Moves past `k` bytes of the front chunk `c`, dropping it once read to its end. */
  private skip(c: Uint8Array, k: number): void {
    this.head += k;
    this.length -= k;
    if (this.head === c.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** The byte at `i` from the front (i < length). */
  at(i: number): number {
    let k = this.head + i;
    for (const c of this.chunks) {
      if (k < c.length) return c[k]!;
      k -= c.length;
    }
    return -1;
  }

  /** Where the next CRLF starts, searching at most `limit` bytes; -1 when not there yet. */
  crlf(limit: number): number {
    const end = Math.min(this.length, limit) - 1;
    for (let i = 0; i < end; i++) if (this.at(i) === 13 && this.at(i + 1) === 10) return i;
    return -1;
  }
}

const FRAME_HEADER = 8;
/** Larger than any negotiable packet: a longer frame is passed on for the session to refuse. */
const MAX_FRAME = 16 * 1024 * 1024 + 64;

/** The response body cut into whole session frames (u32 seq ‖ u32 length ‖ sealed bytes). */
async function* sealedFrames(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const q = new ChunkQueue();
  for (;;) {
    while (q.length >= FRAME_HEADER) {
      const len = ((q.at(4) << 24) | (q.at(5) << 16) | (q.at(6) << 8) | q.at(7)) >>> 0;
      if (len > MAX_FRAME) {
        yield q.take(q.length);
        break;
      }
      if (q.length < FRAME_HEADER + len) break;
      yield q.take(FRAME_HEADER + len);
    }
    const { done, value } = await reader.read();
    if (done) {
      if (q.length) yield q.take(q.length);
      return;
    }
    q.push(value);
  }
}

const LINE_MAX = 8192;

/**
 * The instances of a WADO-style multipart/related body (RFC 2387), as the cloud sends them: each part
 * with its Content-Length and Content-Location. Parts are taken by length straight into their own
 * buffer; a part without a length, or a body that ends early, is refused.
 */
async function* instancesOf(frames: AsyncIterator<Uint8Array>): AsyncGenerator<Retrieved> {
  const q = new ChunkQueue();
  const dec = new TextDecoder();
  const fill = async (): Promise<boolean> => {
    const r = await frames.next();
    if (r.done) return false;
    q.push(r.value);
    return true;
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const i = q.crlf(LINE_MAX);
      if (i >= 0) {
        const text = dec.decode(q.take(i));
        q.take(2);
        return text;
      }
      if (q.length >= LINE_MAX)
        throw new ZtvError('integrity', 'the cloud sent a multipart line that never ends');
      if (!(await fill()))
        throw new ZtvError('truncated', 'the retrieval ends in the middle of a part');
    }
  };
  let delimiter = (await line()).trim();
  while (delimiter === '') delimiter = (await line()).trim();
  if (!delimiter.startsWith('--'))
    throw new ZtvError('integrity', 'the retrieval is not a multipart body');
  for (;;) {
    const headers: Record<string, string> = {};
    for (let h = await line(); h !== ''; h = await line()) {
      const c = h.indexOf(':');
      if (c > 0) headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
    }
    const length = Number(headers['content-length']);
    if (!Number.isSafeInteger(length) || length < 0)
      throw new ZtvError('integrity', 'the cloud sent a part without its Content-Length');
    while (q.length < length + 2)
      if (!(await fill()))
        throw new ZtvError(
          'truncated',
          'a part of the retrieval is shorter than its Content-Length',
        );
    const bytes = q.take(length);
    q.take(2); // the CRLF before the next delimiter
    const id = /\/instances\/([0-9a-f-]+)/.exec(headers['content-location'] ?? '')?.[1] ?? '';
    yield { id, bytes };
    const next = (await line()).trim();
    if (next === `${delimiter}--`) return;
    if (next !== delimiter)
      throw new ZtvError('integrity', 'a part of the retrieval is not followed by the boundary');
  }
}

/** Session refusals after which a fresh session may simply be opened. */
const STALE_SESSION = new Set(['unknown-session', 'expired', 'closed']);

export interface Retrieved {
  readonly id: string;
  readonly bytes: Uint8Array;
}

export class FederationClient {
  private producer?: Promise<SessionClient>;
  private cloud?: Promise<SessionClient>;
  private readonly f: typeof fetch;

  constructor(
    readonly endpoints: Endpoints,
    private readonly device: DeviceKeys,
    private readonly trust: () => PkiView,
    f: typeof fetch = fetch,
  ) {
    this.f = reaching(f, endpoints);
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
    return (await json(
      await reaching(f, { consumer })(`${consumer}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, password }),
      }),
    )) as never;
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

  private async session(url: string, role: 'producer' | 'cloud'): Promise<SessionClient> {
    const c = new SessionClient(poster(url, this.f), {
      credentials: {
        signer: await signingKeyFromCryptoKeys(
          'ECDSA-P256',
          this.device.signing.privateKey,
          this.device.signing.publicKey,
        ),
        chain: this.device.chain,
      },
      validateServer: organisationValidator(this.trust, [role]),
    });
    await c.connect();
    return c;
  }

  /** One session per party, opened once even when several requests start together. */
  private producerSession(): Promise<SessionClient> {
    this.producer ??= this.session(this.endpoints.producer, 'producer').catch((e: unknown) => {
      this.producer = undefined;
      throw e;
    });
    return this.producer;
  }

  private cloudSession(): Promise<SessionClient> {
    this.cloud ??= this.session(this.endpoints.cloud, 'cloud').catch((e: unknown) => {
      this.cloud = undefined;
      throw e;
    });
    return this.cloud;
  }

  /**
   * Runs `fn` in the party's session; when the service no longer knows the session (it expired after
   * inactivity, or the service restarted), opens a new one and runs `fn` once more.
   */
  private async inSession<T>(
    party: 'producer' | 'cloud',
    fn: (s: SessionClient) => Promise<T>,
  ): Promise<T> {
    const open = () => (party === 'producer' ? this.producerSession() : this.cloudSession());
    try {
      return await fn(await open());
    } catch (e) {
      if (!(e instanceof HttpFailure) || !STALE_SESSION.has(e.reason)) throw e;
      if (party === 'producer') this.producer = undefined;
      else this.cloud = undefined;
      return fn(await open());
    }
  }

  /** Opens the sessions ahead of time (the handshakes then cost nothing when the clinician asks). */
  async connect(): Promise<void> {
    await Promise.all([this.producerSession(), this.cloudSession()]);
  }

  async search(
    purpose: string,
    roleAssignments: readonly string[] = [],
  ): Promise<{
    studies: {
      patient: { id: string; name: string; birthDate: string };
      study: ConsultAnswer['study'];
      series: { uid: string; description: string; instances: number }[];
    }[];
  }> {
    return this.inSession('producer', (s) => s.request('search', { purpose, roleAssignments }));
  }

  async consult(req: ConsultRequest): Promise<ConsultAnswer> {
    return this.inSession('producer', (s) => s.request('consult', req));
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

  async redeem(
    ticket: Ticket,
  ): Promise<{ redemption: string; ticket: string; images: string[]; expiresAt: number }> {
    return this.inSession('cloud', (s) => s.request('redeem', { ticket: ticket.cloud }));
  }

  /**
   * Streams the traced instances of a redemption, one complete instance at a time; `signal` stops
   * the transfer (the clinician closed the study).
   */
  async *retrieve(redemption: string, signal?: AbortSignal): AsyncGenerator<Retrieved> {
    const s = await this.cloudSession();
    const fetchStream = async (path: string, sealed: Sealed) => {
      const r = await this.f(`${this.endpoints.cloud}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sealed),
        ...(signal ? { signal } : {}),
      });
      if (!r.ok) await json(r);
      if (!r.body) throw new HttpFailure(r.status, 'stream', `the cloud answered ${r.status}`);
      const reader = r.body.getReader();
      return sealedFrames(reader);
    };
    const frames = s.stream('retrieve', { redemption }, fetchStream);
    yield* instancesOf(frames);
    // The multipart body is complete; the stream's final frame must still be read and checked.
    for (let r = await frames.next(); !r.done; r = await frames.next())
      if (r.value.length)
        throw new ZtvError('integrity', 'the cloud sent data after the end of the retrieval');
  }

  async close(): Promise<void> {
    const sessions = [this.producer, this.cloud];
    this.producer = undefined;
    this.cloud = undefined;
    await Promise.all(sessions.map((s) => s?.then((c) => c.close()).catch(() => undefined)));
  }
}
