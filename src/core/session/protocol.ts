/**
 * Sessions between a viewer and a service, after PS3.15's Integrated Secure Communication Layer with
 * modern algorithms, in its four phases:
 *  1. line connection — both state protocol versions and maximum packet size; the smaller size wins
 *     and is the chunk size of streamed transfers; an unsupported version is refused;
 *  2. mutual authentication — each side sends a fresh challenge and an ephemeral ECDH P-256 key; each
 *     signs the transcript (both challenges, both ephemerals, the negotiated parameters, both
 *     certificates) with its certified key; each validates the other's chain and trust-group membership;
 *  3. secured messages — AES-256-GCM under keys derived from the ECDH secret by HKDF-SHA-256, one per
 *     direction, sequence numbers in nonce and AAD, so tampered, reordered and replayed messages fail;
 *  4. line disconnection — an explicit close invalidates the session on both sides; idle sessions
 *     expire.
 * Transport-agnostic: the client talks through a `post` function, the server answers plain objects.
 */
import {
  concatBytes,
  fromBase64Url,
  randomBytes,
  toBase64Url,
  toHex,
  u64be,
  utf8,
} from '../bytes.ts';
import { gcmOpen, gcmSeal, importGcmKey } from '../crypto/aead.ts';
import { ECDH_P256, importEcdhPublicKey } from '../crypto/ecdh.ts';
import { hkdfSha256, sha256 } from '../crypto/hash.ts';
import { verifyKeyFromSpki, type SigningKey } from '../crypto/keys.ts';
import { ZtvError } from '../errors.ts';

export const PROTOCOL_VERSION = 'ZTV-ISCL/1';
export const DEFAULT_MAX_PACKET = 256 * 1024;
const MIN_PACKET = 4096;

export class SessionError extends ZtvError {
  constructor(
    readonly reason: SessionRefusal,
    message: string,
  ) {
    super('bad-input', message, { reason });
    this.name = 'SessionError';
  }
}

export type SessionRefusal =
  | 'unsupported-version'
  | 'bad-request'
  | 'unknown-session'
  | 'wrong-phase'
  | 'bad-certificate'
  | 'bad-signature'
  | 'replayed-challenge'
  | 'bad-message'
  | 'out-of-order'
  | 'closed'
  | 'expired'
  | 'truncated';

/**
 * Refusals of a session the server no longer holds: never opened here, closed, expired after
 * inactivity, or held by a process that has since restarted. None is evidence of an attack — a
 * session id is no credential (nothing sealed under it opens without the session's keys, which only
 * its two ends hold) — and the client's answer to each is to open a fresh session.
 */
export const STALE_SESSION_REFUSALS: ReadonlySet<SessionRefusal> = new Set([
  'unknown-session',
  'expired',
  'closed',
]);

/** Hex characters of a session id that name the server process that issued it (its run). */
const RUN_HEX = 8;

/** What a validator says about a presented certificate chain (PEM, leaf first). */
export type PeerCheck =
  | { readonly ok: true; readonly peer: PeerIdentity }
  | { readonly ok: false; readonly reason: string };

export interface PeerIdentity {
  /** Subject of the leaf certificate. */
  readonly subject: string;
  /** SHA-256 thumbprint of the leaf certificate (hex): the device or organisation id. */
  readonly thumbprint: string;
  /** The leaf's SubjectPublicKeyInfo: the key that signs in the handshake. */
  readonly spki: Uint8Array;
  /** Role-specific attributes (clinician id and role, organisation id). */
  readonly attributes: Readonly<Record<string, string>>;
}

export type PeerValidator = (chain: readonly string[]) => Promise<PeerCheck>;

export interface Credentials {
  readonly signer: SigningKey;
  /** PEM certificates, leaf first (intermediates after it). */
  readonly chain: readonly string[];
}

/** A service refused an operation: its HTTP-like status, a stable code and a sentence. */
export class RemoteError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

// --- messages -------------------------------------------------------------------------------

export interface ConnectRequest {
  readonly versions: readonly string[];
  readonly maxPacket: number;
}
export interface ConnectResponse {
  readonly sessionId: string;
  readonly version: string;
  readonly packet: number;
}
export interface AuthRequest {
  readonly sessionId: string;
  readonly challenge: string;
  readonly ephemeral: string;
  readonly chain: readonly string[];
}
export interface AuthResponse {
  readonly challenge: string;
  readonly ephemeral: string;
  readonly chain: readonly string[];
  /** The server's signature over the transcript. */
  readonly signature: string;
}
export interface FinishRequest {
  readonly sessionId: string;
  readonly signature: string;
}
export interface Sealed {
  readonly sessionId: string;
  readonly seq: number;
  readonly data: string;
}

// --- shared crypto ----------------------------------------------------------------------------

interface Transcript {
  readonly version: string;
  readonly packet: number;
  readonly sessionId: string;
  readonly clientChallenge: string;
  readonly clientEphemeral: string;
  readonly clientChain: readonly string[];
  readonly serverChallenge: string;
  readonly serverEphemeral: string;
  readonly serverChain: readonly string[];
}

/** The bytes each side signs: a label for the signer's side, then the canonical transcript. */
function transcriptBytes(t: Transcript, signer: 'client' | 'server'): Uint8Array {
  return concatBytes(
    utf8(`${PROTOCOL_VERSION} ${signer} signature\0`),
    sha256(utf8(JSON.stringify(t))),
  );
}

async function ephemeral(): Promise<{ pair: CryptoKeyPair; spki: string }> {
  const pair = (await crypto.subtle.generateKey(ECDH_P256, false, ['deriveBits'])) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
  return { pair, spki: toBase64Url(spki) };
}

async function deriveKeys(
  own: CryptoKey,
  peerSpki: string,
  t: Transcript,
): Promise<{ c2s: CryptoKey; s2c: CryptoKey }> {
  let peer: CryptoKey;
  try {
    peer = await importEcdhPublicKey(fromBase64Url(peerSpki), false);
  } catch {
    throw new SessionError('bad-request', 'the ephemeral key is not an ECDH P-256 public key');
  }
  const secret = new Uint8Array(
    await crypto.subtle.deriveBits({ name: 'ECDH', public: peer }, own, 256),
  );
  const salt = sha256(utf8(JSON.stringify(t)));
  const key = (label: string) =>
    importGcmKey(hkdfSha256(secret, salt, `${PROTOCOL_VERSION} ${label}`, 32));
  return { c2s: await key('client to server'), s2c: await key('server to client') };
}

const C2S = 1;
const S2C = 2;

const nonceOf = (direction: number, seq: number): Uint8Array<ArrayBuffer> =>
  concatBytes(Uint8Array.of(0, 0, 0, direction), u64be(seq)) as Uint8Array<ArrayBuffer>;
const aadOf = (sessionId: string, direction: number, seq: number): Uint8Array<ArrayBuffer> =>
  concatBytes(
    utf8(`${sessionId}\0`),
    Uint8Array.of(direction),
    u64be(seq),
  ) as Uint8Array<ArrayBuffer>;

const sealRaw = (
  key: CryptoKey,
  sessionId: string,
  direction: number,
  seq: number,
  plain: Uint8Array,
): Promise<Uint8Array> =>
  gcmSeal(key, nonceOf(direction, seq), plain, aadOf(sessionId, direction, seq));

async function unsealRaw(
  key: CryptoKey,
  sessionId: string,
  direction: number,
  seq: number,
  ct: Uint8Array,
): Promise<Uint8Array> {
  try {
    return await gcmOpen(key, nonceOf(direction, seq), ct, aadOf(sessionId, direction, seq));
  } catch {
    throw new SessionError(
      'bad-message',
      'a secured message failed authentication: tampered, or not of this session',
    );
  }
}

/** A streamed frame: u32 seq ‖ u32 length ‖ AES-GCM ciphertext of (kind byte ‖ payload). */
export const FRAME_DATA = 0;
export const FRAME_END = 1;
export const FRAME_ERROR = 2;

function frame(seq: number, ct: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + ct.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, seq);
  dv.setUint32(4, ct.length);
  out.set(ct, 8);
  return out;
}

/**
 * What opening one stream's frames takes, granted by the session for that stream only: the operation
 * (for sentences), the session id, its server-to-client key (a non-extractable CryptoKey: it can be
 * posted to a worker, its bytes exist nowhere), the first frame number due, the negotiated packet size
 * and the sealed request.
 */
export interface StreamGrant {
  readonly path: string;
  readonly sessionId: string;
  readonly key: CryptoKey;
  readonly seq: number;
  readonly packet: number;
  readonly request: Sealed;
}

/**
 * Opens a stream's frames strictly in order from a grant, in whichever thread holds it: a frame out
 * of sequence, altered or larger than a packet, or a body that ends before the final frame, is
 * refused (SessionError, with the session's reasons); an error frame becomes a RemoteError. `seq` is
 * always the number of the next frame due: what the session goes on from.
 */
export class FrameReader {
  seq: number;

  constructor(private readonly grant: StreamGrant) {
    this.seq = grant.seq;
  }

  async *open(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const { key, sessionId, packet, path } = this.grant;
    let buf: Uint8Array = new Uint8Array(0);
    for await (const chunk of chunks) {
      // Callers that cut the body into whole frames hand each over as it is: no copy then.
      if (buf.length === 0) buf = chunk;
      else {
        const next = new Uint8Array(buf.length + chunk.length);
        next.set(buf);
        next.set(chunk, buf.length);
        buf = next;
      }
      while (buf.length >= 8) {
        const dv = new DataView(buf.buffer, buf.byteOffset, 8);
        const seq = dv.getUint32(0);
        const len = dv.getUint32(4);
        if (len > packet + 64)
          throw new SessionError('bad-message', 'a streamed frame is larger than the packet size');
        if (buf.length < 8 + len) break;
        if (seq !== this.seq)
          throw new SessionError('out-of-order', `frame ${seq} arrived where ${this.seq} was due`);
        const plain = await unsealRaw(key, sessionId, S2C, seq, buf.subarray(8, 8 + len));
        this.seq++;
        buf = buf.subarray(8 + len);
        if (plain[0] === FRAME_DATA) yield plain.subarray(1);
        else {
          const info: { status: number; error?: unknown; message?: unknown } = statusDocument(
            plain.subarray(1),
            "the stream's final frame",
          );
          if (plain[0] === FRAME_ERROR || info.status >= 400)
            throw new RemoteError(
              info.status,
              typeof info.error === 'string' ? info.error : 'error',
              typeof info.message === 'string' ? info.message : `${path} failed`,
            );
          return;
        }
      }
    }
    throw new SessionError('truncated', 'the stream ended without its final frame');
  }
}

async function seal(
  key: CryptoKey,
  sessionId: string,
  direction: number,
  seq: number,
  plain: Uint8Array,
): Promise<Sealed> {
  return {
    sessionId,
    seq,
    data: toBase64Url(await sealRaw(key, sessionId, direction, seq, plain)),
  };
}

/** Base64url from a peer: text that is not base64 is the peer's malformed message, refused as such. */
function decode(b64: unknown, reason: SessionRefusal, what: string): Uint8Array {
  try {
    return fromBase64Url(b64 as string);
  } catch {
    throw new SessionError(reason, `${what} is not base64url`);
  }
}

/** Async throughout: a message that is not base64 is a rejection, reported like a failed seal. */
const unseal = async (key: CryptoKey, m: Sealed, direction: number): Promise<Uint8Array> =>
  unsealRaw(key, m.sessionId, direction, m.seq, decode(m.data, 'bad-message', 'a secured message'));

/**
 * The JSON document a sealed reply or final frame carries: `{ status, … }`. It authenticated, so
 * only the peer could have made it; a peer that seals anything else is refused by name, not met
 * with a parser's exception.
 */
function statusDocument(plain: Uint8Array, what: string): { status: number } {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(plain));
  } catch {
    doc = undefined;
  }
  if (
    typeof doc !== 'object' ||
    doc === null ||
    typeof (doc as { status?: unknown }).status !== 'number'
  )
    throw new SessionError('bad-message', `${what} is not a status document`);
  return doc as { status: number };
}

async function verifyWith(
  spki: Uint8Array,
  signature: string,
  message: Uint8Array,
): Promise<boolean> {
  const key = await verifyKeyFromSpki(spki);
  return key.verify(fromBase64Url(signature), message);
}

// --- server -------------------------------------------------------------------------------

interface ServerSession {
  readonly id: string;
  readonly version: string;
  readonly packet: number;
  phase: 'connected' | 'challenged' | 'open' | 'closed';
  lastSeen: number;
  transcript?: Transcript;
  ephemeral?: CryptoKeyPair;
  client?: PeerIdentity;
  keys?: { c2s: CryptoKey; s2c: CryptoKey };
  recvSeq: number;
  sendSeq: number;
}

export interface SessionServerOptions {
  readonly credentials: Credentials;
  readonly validateClient: PeerValidator;
  readonly versions?: readonly string[];
  readonly maxPacket?: number;
  readonly idleMs?: number;
  readonly now?: () => number;
  /**
   * The first byte of every session id this server makes (0–255): a process of several (the
   * cloud's workers) marks its sessions so that a front routes each message to the process that
   * holds its keys. The other 15 bytes stay random.
   */
  readonly idPrefix?: number;
  /**
   * Called with every refusal (for the audit log). Never receives keys or message contents. A
   * promise it returns is awaited where the refusal is reported (`report`), so that the record
   * exists before the refused peer hears the answer.
   */
  readonly onRefusal?: (
    reason: SessionRefusal,
    message: string,
    sessionId?: string,
  ) => void | Promise<void>;
}

export interface OpenedMessage {
  readonly plaintext: Uint8Array;
  readonly client: PeerIdentity;
  readonly sessionId: string;
}

export class SessionServer {
  private readonly sessions = new Map<string, ServerSession>();
  /** Client challenges seen, with when: a replay within the idle time is refused by name. */
  private readonly usedChallenges = new Map<string, number>();
  private readonly now: () => number;
  private connects = 0;
  /**
   * This process's run: random, the first characters of every session id it issues; its first byte
   * is `idPrefix` when one is given.
   */
  private readonly run: string;

  constructor(private readonly opts: SessionServerOptions) {
    this.now = opts.now ?? Date.now;
    this.run = toHex(
      opts.idPrefix === undefined
        ? randomBytes(RUN_HEX / 2)
        : concatBytes(Uint8Array.of(opts.idPrefix), randomBytes(RUN_HEX / 2 - 1)),
    );
  }

  private refuse(reason: SessionRefusal, message: string, sessionId?: string): never {
    void this.opts.onRefusal?.(reason, message, sessionId);
    throw new SessionError(reason, message);
  }

  private get(sessionId: unknown, phase: ServerSession['phase']): ServerSession {
    if (typeof sessionId !== 'string') this.refuse('bad-request', 'a session id is required');
    const s = this.sessions.get(sessionId as string);
    if (!s)
      this.refuse(
        'unknown-session',
        'no such session (never opened, or already forgotten)',
        sessionId as string,
      );
    const session = s!;
    if (session.phase === 'closed') this.refuse('closed', 'the session was closed', session.id);
    if (this.now() - session.lastSeen > (this.opts.idleMs ?? 15 * 60_000)) {
      session.phase = 'closed';
      this.sessions.delete(session.id);
      this.refuse('expired', 'the session expired after inactivity', session.id);
    }
    if (session.phase !== phase)
      this.refuse('wrong-phase', `the session is ${session.phase}, not ${phase}`, session.id);
    session.lastSeen = this.now();
    return session;
  }

  /** Phase 1. */
  connect(req: ConnectRequest): ConnectResponse {
    if (++this.connects % 64 === 0) this.sweep();
    const mine = this.opts.versions ?? [PROTOCOL_VERSION];
    if (!Array.isArray(req.versions) || !Number.isInteger(req.maxPacket))
      this.refuse('bad-request', 'a connect request names versions and a maximum packet size');
    const version = req.versions.find((v) => mine.includes(v));
    if (!version)
      this.refuse(
        'unsupported-version',
        `none of the versions ${req.versions.join(', ')} is supported (${mine.join(', ')})`,
      );
    const packet = Math.max(
      MIN_PACKET,
      Math.min(req.maxPacket, this.opts.maxPacket ?? DEFAULT_MAX_PACKET),
    );
    const id = this.run + toHex(randomBytes(16 - RUN_HEX / 2));
    this.sessions.set(id, {
      id,
      version: version!,
      packet,
      phase: 'connected',
      lastSeen: this.now(),
      recvSeq: 0,
      sendSeq: 0,
    });
    return { sessionId: id, version: version!, packet };
  }

  /** Phase 2, first half: the client's challenge and certificate; the server answers and signs. */
  async authenticate(req: AuthRequest): Promise<AuthResponse> {
    const s = this.get(req.sessionId, 'connected');
    if (
      typeof req.challenge !== 'string' ||
      decode(req.challenge, 'bad-request', 'the challenge').length !== 32
    )
      this.refuse('bad-request', 'a challenge is 32 random bytes', s.id);
    if (this.usedChallenges.has(req.challenge))
      this.refuse('replayed-challenge', 'this challenge was already used', s.id);
    this.usedChallenges.set(req.challenge, this.now());
    const check = await this.opts.validateClient(req.chain ?? []);
    if (!check.ok)
      this.refuse('bad-certificate', `the client certificate is refused: ${check.reason}`, s.id);
    const eph = await ephemeral();
    const t: Transcript = {
      version: s.version,
      packet: s.packet,
      sessionId: s.id,
      clientChallenge: req.challenge,
      clientEphemeral: req.ephemeral,
      clientChain: req.chain,
      serverChallenge: toBase64Url(randomBytes(32)),
      serverEphemeral: eph.spki,
      serverChain: this.opts.credentials.chain,
    };
    s.keys = await deriveKeys(eph.pair.privateKey, req.ephemeral, t);
    s.transcript = t;
    s.client = (check as { peer: PeerIdentity }).peer;
    s.phase = 'challenged';
    const signature = await this.opts.credentials.signer.sign(transcriptBytes(t, 'server'));
    return {
      challenge: t.serverChallenge,
      ephemeral: t.serverEphemeral,
      chain: t.serverChain,
      signature: toBase64Url(signature),
    };
  }

  /** Phase 2, second half: the client's signature over the same transcript opens the session. */
  async finish(req: FinishRequest): Promise<{ readonly ok: true }> {
    const s = this.get(req.sessionId, 'challenged');
    const ok = await verifyWith(
      s.client!.spki,
      req.signature,
      transcriptBytes(s.transcript!, 'client'),
    ).catch(() => false);
    if (!ok) {
      s.phase = 'closed';
      this.sessions.delete(s.id);
      this.refuse(
        'bad-signature',
        "the client's signature over the handshake does not verify",
        s.id,
      );
    }
    s.phase = 'open';
    return { ok: true };
  }

  /** Phase 3, inbound: opens a client message; the sequence must be exactly the next one. */
  async open(m: Sealed): Promise<OpenedMessage> {
    const s = this.get(m?.sessionId, 'open');
    if (m.seq !== s.recvSeq)
      this.refuse(
        'out-of-order',
        `message ${m.seq} arrived where ${s.recvSeq} was due: replayed or reordered`,
        s.id,
      );
    const plaintext = await unseal(s.keys!.c2s, m, C2S).catch(async (e: unknown) => {
      await this.opts.onRefusal?.('bad-message', (e as Error).message, s.id);
      throw e;
    });
    s.recvSeq++;
    return { plaintext, client: s.client!, sessionId: s.id };
  }

  /** Phase 3, outbound: seals a response (or one chunk of a streamed transfer). */
  async seal(sessionId: string, plaintext: Uint8Array): Promise<Sealed> {
    const s = this.get(sessionId, 'open');
    if (plaintext.length > s.packet)
      this.refuse('bad-request', `a packet holds at most ${s.packet} bytes`, s.id);
    return seal(s.keys!.s2c, s.id, S2C, s.sendSeq++, plaintext);
  }

  packetSize(sessionId: string): number {
    return this.get(sessionId, 'open').packet;
  }

  /** Phase 3, streamed: one frame of a transfer; `payload` is at most a packet. */
  async sealFrame(sessionId: string, kind: number, payload: Uint8Array): Promise<Uint8Array> {
    const s = this.get(sessionId, 'open');
    if (payload.length > s.packet)
      this.refuse('bad-request', `a packet holds at most ${s.packet} bytes`, s.id);
    const plain = new Uint8Array(1 + payload.length);
    plain[0] = kind;
    plain.set(payload, 1);
    const seq = s.sendSeq++;
    return frame(seq, await sealRaw(s.keys!.s2c, s.id, S2C, seq, plain));
  }

  /**
   * Phase 4: the (already opened) close request ends the session for good. Its keys are dropped at
   * once; the id is remembered as closed until it would have expired, so that a message still sent
   * on it is refused as `closed` (and logged so), not mistaken for an unknown session.
   */
  close(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    s.phase = 'closed';
    s.keys = undefined;
    s.ephemeral = undefined;
    s.transcript = undefined;
    s.lastSeen = this.now();
  }

  /**
   * Whether a session id has the shape of one this server issues but names another run: a session
   * opened before the service restarted (or an id made up to look like one — harmless either way).
   */
  issuedByEarlierRun(sessionId: string | undefined): boolean {
    return (
      typeof sessionId === 'string' &&
      /^[0-9a-f]{32}$/.test(sessionId) &&
      !sessionId.startsWith(this.run)
    );
  }

  /**
   * Reports a refusal made above the session layer (an operation's body that fails its schema, an
   * unknown operation), so that it reaches the same log as the session's own refusals; resolves
   * once the log holds it.
   */
  async report(reason: SessionRefusal, message: string, sessionId?: string): Promise<void> {
    await this.opts.onRefusal?.(reason, message, sessionId);
  }

  /**
   * Drops idle sessions, closed ones past their idle time, and challenges older than that (a
   * replayed challenge is then still refused by the transcript signature, which covers the
   * server's fresh challenge and session id). Also run every 64 connections.
   */
  sweep(): number {
    let n = 0;
    const idle = this.opts.idleMs ?? 15 * 60_000;
    for (const s of this.sessions.values())
      if (this.now() - s.lastSeen > idle) {
        this.sessions.delete(s.id);
        n++;
      }
    for (const [c, at] of this.usedChallenges)
      if (this.now() - at > idle) this.usedChallenges.delete(c);
    return n;
  }
}

// --- client -------------------------------------------------------------------------------

export type Post = (path: string, body: unknown) => Promise<unknown>;

export interface SessionClientOptions {
  readonly credentials: Credentials;
  readonly validateServer: PeerValidator;
  readonly versions?: readonly string[];
  readonly maxPacket?: number;
  /**
   * Called with every refusal this side makes (server certificate or signature refused, a reply or
   * frame tampered, out of order or missing, use after close), for the client's log. Never receives
   * keys or message contents.
   */
  readonly onRefusal?: (reason: SessionRefusal, message: string, sessionId?: string) => void;
}

export class SessionClient {
  private sessionId = '';
  private keys?: { c2s: CryptoKey; s2c: CryptoKey };
  private sendSeq = 0;
  private recvSeq = 0;
  private closed = false;
  /** A stream ended without reporting how many frames it opened: the sequence is unknown. */
  private lost = false;
  /** Settles when the call in progress has ended: one sealed exchange at a time (see `turn`). */
  private busy: Promise<void> = Promise.resolve();
  packet = 0;
  server?: PeerIdentity;

  constructor(
    private readonly post: Post,
    private readonly opts: SessionClientOptions,
  ) {}

  get id(): string {
    return this.sessionId;
  }

  private refuse(reason: SessionRefusal, message: string): never {
    this.opts.onRefusal?.(reason, message, this.sessionId || undefined);
    throw new SessionError(reason, message);
  }

  /** Opens a sealed reply or frame; a failure is refused (and reported) as a bad message. */
  private async unsealOrRefuse(run: () => Promise<Uint8Array>): Promise<Uint8Array> {
    try {
      return await run();
    } catch (e) {
      if (e instanceof SessionError) this.refuse(e.reason, e.message);
      throw e;
    }
  }

  /** A sealed reply's status document; anything else is refused (and reported). */
  private document(plain: Uint8Array, what: string): { status: number; body?: unknown } {
    try {
      return statusDocument(plain, what);
    } catch (e) {
      this.refuse('bad-message', (e as Error).message);
    }
  }

  /** Phases 1 and 2. */
  async connect(): Promise<void> {
    const c = (await this.post('/session/connect', {
      versions: this.opts.versions ?? [PROTOCOL_VERSION],
      maxPacket: this.opts.maxPacket ?? DEFAULT_MAX_PACKET,
    })) as ConnectResponse;
    this.sessionId = c.sessionId;
    this.packet = c.packet;
    const eph = await ephemeral();
    const challenge = toBase64Url(randomBytes(32));
    const a = (await this.post('/session/authenticate', {
      sessionId: c.sessionId,
      challenge,
      ephemeral: eph.spki,
      chain: this.opts.credentials.chain,
    } satisfies AuthRequest)) as AuthResponse;
    const check = await this.opts.validateServer(a.chain);
    if (!check.ok)
      this.refuse('bad-certificate', `the server certificate is refused: ${check.reason}`);
    const t: Transcript = {
      version: c.version,
      packet: c.packet,
      sessionId: c.sessionId,
      clientChallenge: challenge,
      clientEphemeral: eph.spki,
      clientChain: this.opts.credentials.chain,
      serverChallenge: a.challenge,
      serverEphemeral: a.ephemeral,
      serverChain: a.chain,
    };
    if (
      !(await verifyWith(check.peer.spki, a.signature, transcriptBytes(t, 'server')).catch(
        () => false,
      ))
    )
      this.refuse('bad-signature', "the server's signature over the handshake does not verify");
    this.keys = await deriveKeys(eph.pair.privateKey, a.ephemeral, t);
    this.server = check.peer;
    const signature = await this.opts.credentials.signer.sign(transcriptBytes(t, 'client'));
    await this.post('/session/finish', {
      sessionId: c.sessionId,
      signature: toBase64Url(signature),
    } satisfies FinishRequest);
  }

  private ready(): { c2s: CryptoKey; s2c: CryptoKey } {
    if (this.closed) this.refuse('closed', 'the session was closed');
    if (!this.keys) this.refuse('wrong-phase', 'the session is not open');
    if (this.lost)
      this.refuse('wrong-phase', 'a stream of this session ended without its frame count');
    return this.keys!;
  }

  /**
   * Waits for the calls issued before this one to end, then holds the session until `release()`.
   * Messages and replies are numbered in one sequence per direction, so two calls in flight at once
   * could reach the server (or come back) out of order and be refused as replayed: callers may issue
   * calls concurrently (a search box's queries, say) and they are carried one after the other.
   */
  private async turn(): Promise<() => void> {
    const before = this.busy;
    let release!: () => void;
    this.busy = new Promise<void>((r) => (release = r));
    await before;
    return release;
  }

  /** Seals a request body for the server. */
  async sealRequest(plain: Uint8Array): Promise<Sealed> {
    return seal(this.ready().c2s, this.sessionId, C2S, this.sendSeq++, plain);
  }

  /** Opens a response (or a chunk), which must be the next in sequence. */
  async openResponse(m: Sealed): Promise<Uint8Array> {
    const keys = this.ready();
    if (m.sessionId !== this.sessionId || m.seq !== this.recvSeq)
      this.refuse('out-of-order', `response ${m.seq} arrived where ${this.recvSeq} was due`);
    const plain = await this.unsealOrRefuse(() => unseal(keys.s2c, m, S2C));
    this.recvSeq++;
    return plain;
  }

  /**
   * A streamed transfer: the request is sealed as usual; the answer is a sequence of frames, each
   * opened in order and yielded as plaintext; the final frame says how it ended.
   */
  stream(
    path: string,
    body: unknown,
    fetchStream: (
      path: string,
      sealed: Sealed,
    ) => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    return this.streamWith(path, body, async function* (grant, opened) {
      const reader = new FrameReader(grant);
      try {
        yield* reader.open(await fetchStream('/session/stream', grant.request));
      } finally {
        opened(reader.seq);
      }
    });
  }

  /**
   * A streamed transfer whose frames `open` opens, here or in another thread (a worker, handed the
   * grant: the request sealed here, the session's receive key and the next frame number). The
   * session holds its turn for the whole stream, until `open` has ended and reported through
   * `opened` the frame number after the last one it opened; the next call goes on from there. A
   * stream that ends without that report leaves the session out of step (`inStep` false), and the
   * session refuses further calls. A refusal `open` throws (a SessionError) is reported here.
   */
  async *streamWith<T>(
    path: string,
    body: unknown,
    open: (grant: StreamGrant, opened: (seq: number) => void) => AsyncIterable<T>,
  ): AsyncGenerator<T, void, undefined> {
    // Held until the final frame, a refusal or the consumer leaving the loop (return() runs finally).
    const release = await this.turn();
    let grant: StreamGrant | undefined;
    let reported: number | undefined;
    try {
      const keys = this.ready();
      grant = {
        path,
        sessionId: this.sessionId,
        key: keys.s2c,
        seq: this.recvSeq,
        packet: this.packet,
        request: await this.sealRequest(utf8(JSON.stringify({ path, body }))),
      };
      try {
        yield* open(grant, (seq) => (reported = seq));
      } catch (e) {
        if (e instanceof SessionError)
          this.opts.onRefusal?.(e.reason, e.message, this.sessionId || undefined);
        throw e;
      }
    } finally {
      if (grant) {
        if (reported !== undefined && Number.isSafeInteger(reported) && reported >= grant.seq)
          this.recvSeq = reported;
        else this.lost = true;
      }
      release();
    }
  }

  /** Whether this side knows the next frame number (see `streamWith`). */
  get inStep(): boolean {
    return !this.lost;
  }

  /** A JSON request through the session: sealed out, sealed back; a refusal becomes a RemoteError. */
  async request<T>(path: string, body: unknown): Promise<T> {
    const release = await this.turn();
    let r: { status: number; body?: unknown };
    try {
      const sealed = await this.sealRequest(utf8(JSON.stringify({ path, body })));
      const reply = (await this.post('/session/message', sealed)) as Sealed;
      r = this.document(await this.openResponse(reply), 'the reply');
    } finally {
      release();
    }
    if (r.status >= 400) {
      const b = (r.body ?? {}) as { error?: string; message?: string };
      throw new RemoteError(
        r.status,
        b.error ?? 'error',
        b.message ?? `${path} failed with ${r.status}`,
      );
    }
    return r.body as T;
  }

  /** Phase 4. */
  async close(): Promise<void> {
    const release = await this.turn();
    try {
      if (this.closed || !this.keys) return;
      const sealed = await this.sealRequest(
        utf8(JSON.stringify({ path: '/session/close', body: {} })),
      );
      await this.post('/session/message', sealed).catch(() => undefined);
      this.closed = true;
      this.keys = undefined;
    } finally {
      release();
    }
  }
}
