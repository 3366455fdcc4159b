/**
 * A device's sessions with the federation's parties, shared by the clinician's client and the
 * auditor's: one authenticated session per party (the device's certificate chain and signing key; the
 * party's chain validated against the pinned trust for its role), opened once even when several calls
 * start together, opened again when the party no longer knows it (expired, restarted); typed calls by
 * operation contract, and streamed answers opened frame by frame.
 */
import { signingKeyFromCryptoKeys } from '../crypto/keys.ts';
import type { OrgRole } from '../pki/oids.ts';
import type { PkiView } from '../pki/resolver.ts';
import type {
  AnswerOf,
  AnyMessageContract,
  AnyStreamContract,
  BodyOf,
  StreamAnswerOf,
} from '../operations/contract.ts';
import { organisationValidator } from '../session/peers.ts';
import {
  FrameReader,
  SessionClient,
  STALE_SESSION_REFUSALS,
  type Sealed,
  type SessionRefusal,
  type StreamGrant,
} from '../session/protocol.ts';
import { ChunkQueue } from '../chunks.ts';
import { ZtvError } from '../errors.ts';
import { HttpFailure, json, poster, reaching } from './http.ts';

/** The device's credentials: its signing key pair and its certificate chain (PEM, device first). */
export interface DeviceCredentials {
  readonly signing: CryptoKeyPair;
  readonly chain: readonly string[];
}

/** The party no longer holds the session (closed, expired, restarted): a fresh one may be opened. */
const isStale = (e: unknown): boolean =>
  e instanceof HttpFailure && STALE_SESSION_REFUSALS.has(e.reason as SessionRefusal);

/**
 * A party at capacity answered 503 before the session saw the message: that message's sequence
 * number is spent on this side only, so the session is out of step and the next call opens another.
 */
const shed = (e: unknown): boolean => e instanceof HttpFailure && e.status === 503;

const FRAME_HEADER = 8;
/** Larger than any negotiable packet: a longer frame is passed on for the session to refuse. */
const MAX_FRAME = 16 * 1024 * 1024 + 64;

/** A response body cut into whole session frames (u32 seq ‖ u32 length ‖ sealed bytes). */
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

/**
 * POSTs a sealed stream request to a party and returns its answer cut into whole frames: an error
 * status becomes an HttpFailure (a stale session is refused so, before any frame), an unreachable
 * party a NetworkFailure. Runs in the page or in a worker alike.
 */
export async function fetchFrames(
  base: string,
  party: string,
  request: Sealed,
  f: typeof fetch,
  signal?: AbortSignal,
): Promise<AsyncGenerator<Uint8Array>> {
  const r = await reaching(f, { [party]: base })(`${base}/session/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
    ...(signal ? { signal } : {}),
  });
  if (!r.ok) await json(r);
  if (!r.body) throw new HttpFailure(r.status, 'stream', `the ${party} answered ${r.status}`);
  return sealedFrames(r.body.getReader());
}

export class PartySessions<Party extends OrgRole> {
  private readonly open = new Map<Party, Promise<SessionClient>>();
  private readonly f: typeof fetch;

  /** `urls`: each party's base URL; a party is validated as an organisation of that role. */
  constructor(
    private readonly urls: Readonly<Partial<Record<Party, string>>>,
    private readonly device: DeviceCredentials,
    private readonly trust: () => PkiView,
    f: typeof fetch = fetch,
  ) {
    this.f = f;
  }

  private url(party: Party): string {
    const u = this.urls[party];
    if (!u) throw new ZtvError('bad-input', `no ${party} URL was given`);
    return u;
  }

  private async connect(party: Party): Promise<SessionClient> {
    const c = new SessionClient(poster(this.url(party), this.f), {
      credentials: {
        signer: await signingKeyFromCryptoKeys(
          'ECDSA-P256',
          this.device.signing.privateKey,
          this.device.signing.publicKey,
        ),
        chain: this.device.chain,
      },
      validateServer: organisationValidator(this.trust, [party]),
    });
    await c.connect();
    return c;
  }

  /** The party's session, opened once even when several requests start together. */
  session(party: Party): Promise<SessionClient> {
    let s = this.open.get(party);
    if (!s) {
      s = this.connect(party).catch((e: unknown) => {
        this.open.delete(party);
        throw e;
      });
      this.open.set(party, s);
    }
    return s;
  }

  /**
   * One operation in the party's session; when the party no longer knows the session (it expired
   * after inactivity, or the service restarted), a new one is opened and the call made once more.
   */
  async call<C extends AnyMessageContract>(
    party: Party,
    contract: C,
    body: BodyOf<C>,
  ): Promise<AnswerOf<C>> {
    const run = async () => (await this.session(party)).request<AnswerOf<C>>(contract.name, body);
    try {
      return await run();
    } catch (e) {
      if (shed(e)) this.forget(party);
      if (!isStale(e)) throw e;
      this.open.delete(party);
      return run().catch((again: unknown) => {
        if (shed(again)) this.forget(party);
        throw again;
      });
    }
  }

  /**
   * A streamed operation's plaintext, chunk by chunk as the sealed frames are opened; `signal` stops
   * the transfer. A stream that ends without its final frame is refused by the session.
   */
  stream<C extends AnyStreamContract>(
    party: Party,
    contract: C,
    body: BodyOf<C>,
    signal?: AbortSignal,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const f = this.f;
    return this.streamWith(party, contract, body, async function* (grant, base, opened) {
      const reader = new FrameReader(grant);
      try {
        yield* reader.open(await fetchFrames(base, party, grant.request, f, signal));
      } finally {
        opened(reader.seq);
      }
    });
  }

  /**
   * A streamed operation whose frames `open` fetches and opens — in this thread or in a worker —
   * from the session's grant and the party's address (SessionClient.streamWith). When the party no
   * longer knows the session, refused before the first item, a new session is opened and the call
   * made once more.
   */
  async *streamWith<C extends AnyStreamContract, T>(
    party: Party,
    contract: C,
    body: BodyOf<C>,
    open: (grant: StreamGrant, base: string, opened: (seq: number) => void) => AsyncIterable<T>,
  ): AsyncGenerator<T, void, undefined> {
    const base = this.url(party);
    let client: SessionClient | undefined;
    let held: Promise<SessionClient> | undefined;
    const start = async () => {
      held = this.session(party);
      client = await held;
      return client.streamWith(contract.name, body, (grant, opened) => open(grant, base, opened));
    };
    // A stale session is refused before the first frame: then a new session, and the call once more.
    let items: AsyncGenerator<T, void, undefined> | undefined;
    try {
      items = await start();
      let first: IteratorResult<T, void>;
      try {
        first = await items.next();
      } catch (e) {
        if (!isStale(e)) throw e;
        this.open.delete(party);
        items = await start();
        first = await items.next();
      }
      if (first.done) return;
      yield first.value;
      yield* items;
    } catch (e) {
      if (shed(e)) this.forget(party);
      throw e;
    } finally {
      // A consumer that leaves after the first item: the session's stream ends too, and with it
      // its hold on the session (the next call would otherwise wait for it).
      await items?.return();
      // A stream that never said how many frames it opened (its worker died): a new session next.
      if (client && !client.inStep && this.open.get(party) === held) this.forget(party);
    }
  }

  /**
   * Drops the party's session (out of step after a shed message; closing it would be refused as
   * out of order, so the party lets it expire); the next call opens another.
   */
  private forget(party: Party): void {
    this.open.delete(party);
  }

  /** A streamed operation whose answer is one JSON document, parsed. */
  async streamJson<C extends AnyStreamContract>(
    party: Party,
    contract: C,
    body: BodyOf<C>,
  ): Promise<StreamAnswerOf<C>> {
    const q = new ChunkQueue();
    for await (const chunk of this.stream(party, contract, body)) q.push(chunk.slice());
    return JSON.parse(new TextDecoder().decode(q.take(q.length))) as StreamAnswerOf<C>;
  }

  /** Closes every open session (the parties forget their keys). */
  async close(): Promise<void> {
    const sessions = [...this.open.values()];
    this.open.clear();
    await Promise.all(sessions.map((s) => s.then((c) => c.close()).catch(() => undefined)));
  }
}
