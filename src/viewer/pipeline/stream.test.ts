// The stream worker (issue 15, decision 4): a retrieval's sealed frames fetched and opened off the
// page's thread. The worker's job runs in-process here, every message structured-cloned (buffers
// transferred) as posting to a real worker does; the session, its keys and frames are real. What
// it proves: the instances arrive whole and named, the session's count goes on from the worker's
// report, refusals reach the page as the session's own errors, the worker stays at most a window
// ahead of a page that waits, and stopping or losing the worker never leaves the session waiting.
import { describe, expect, it } from 'vitest';
import { HttpFailure } from '../../core/client/http.ts';
import type { Retrieved } from '../../core/client/retrieval.ts';
import { RemoteError, SessionError } from '../../core/session/protocol.ts';
import {
  instanceBytes,
  retrievalBody,
  sessionPair,
  streamFetch,
  type Pair,
} from '../../../test/session-stream.ts';
import { StreamJob } from './stream-job.ts';
import { StreamWorker, WINDOW, type StreamNotice, type StreamWorkerLike } from './stream.ts';

const CLOUD = 'https://cloud.test';
const instances = Array.from({ length: 8 }, (_, i) => ({
  id: `0000000${i}-aaaa-bbbb-cccc-dddddddddddd`,
  bytes: instanceBytes(i, 700 + i * 1500), // from within one frame to across three
}));

interface InProcess extends StreamWorkerLike {
  /** Notices the job posted, in order. */
  readonly posted: StreamNotice[];
  readonly job: StreamJob;
}

function inProcessStreamWorker(f: typeof fetch): InProcess {
  const posted: StreamNotice[] = [];
  const job = new StreamJob((n, transfer) => {
    posted.push(n);
    const copy = structuredClone(n, { transfer }); // detaches the worker's buffer, as a post does
    setTimeout(() => w.onmessage?.({ data: copy }), 0);
  }, f);
  const w: InProcess = {
    posted,
    job,
    onmessage: null,
    onerror: null,
    postMessage(req) {
      const copy = structuredClone(req);
      setTimeout(() => job.handle(copy), 0);
    },
    terminate() {},
  };
  return w;
}

async function setUp(alter?: (frames: Uint8Array[]) => Uint8Array[], end?: 'end' | 'error') {
  const pair = await sessionPair();
  /** Sessions the cloud serves (a test may open another). */
  const pairs = [pair];
  const f = streamFetch(
    (sealed) =>
      pairs
        .find((p) => p.client.id === sealed.sessionId)!
        .frames(sealed, retrievalBody(instances), end),
    alter,
  );
  const workers: InProcess[] = [];
  const streams = new StreamWorker(() => {
    workers.push(inProcessStreamWorker(f));
    return workers.at(-1)!;
  });
  const retrieve = (signal?: AbortSignal, p = pair) =>
    p.client.streamWith('retrieve', { redemption: 'r' }, (grant, opened) =>
      streams.open(grant, CLOUD, opened, signal),
    );
  const another = async () => {
    pairs.push(await sessionPair());
    return pairs.at(-1)!;
  };
  return { pair, f, workers, streams, retrieve, another };
}

const all = async (it: AsyncIterable<Retrieved>) => {
  const out: Retrieved[] = [];
  for await (const r of it) out.push(r);
  return out;
};

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

const echoes = async (pair: Pair) =>
  expect(await pair.client.request('echo', { n: 1 })).toMatchObject({ echo: { n: 1 } });

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

describe('the stream worker', () => {
  it('opens the frames in the worker and hands the page each instance whole, named and transferred', async () => {
    const { pair, f, workers, retrieve } = await setUp();
    const got = await all(retrieve());
    expect(got.map((g) => g.id)).toEqual(instances.map((i) => i.id));
    for (const [k, g] of got.entries())
      expect(Buffer.from(g.bytes).equals(Buffer.from(instances[k]!.bytes))).toBe(true);
    expect(f.urls).toEqual([`${CLOUD}/session/stream`]);
    // Transferred, not copied: the worker's buffers are detached once posted.
    const sent = workers[0]!.posted.filter((n) => n.kind === 'instance');
    expect(sent.map((n) => (n.kind === 'instance' ? n.bytes.byteLength : -1))).toEqual(
      instances.map(() => 0),
    );
    const done = workers[0]!.posted.at(-1)!;
    expect(done).toMatchObject({ kind: 'done' });
    expect(done).not.toHaveProperty('failure');
    // The session goes on from the frame count the worker reported: the next call works.
    await echoes(pair);
    expect(pair.refusals).toEqual([]);
  });

  it.each([
    ['a tampered frame', 'bad-message', (f: Uint8Array[]) => ((f[2]![30]! ^= 1), f)],
    ['frames reordered', 'out-of-order', (f: Uint8Array[]) => [f[0]!, f[2]!, f[1]!, ...f.slice(3)]],
    ['a cut before the final frame', 'truncated', (f: Uint8Array[]) => f.slice(0, -1)],
  ])(
    'refuses %s in the worker; the page gets the session error (%s), reported',
    async (_, reason, alter) => {
      const { pair, retrieve } = await setUp(alter);
      const e = await failure(all(retrieve()));
      expect(e).toBeInstanceOf(SessionError);
      expect((e as SessionError).reason).toBe(reason);
      expect(pair.refusals).toEqual([`client ${reason}`]);
      expect(pair.client.inStep).toBe(true);
    },
  );

  it("passes on the cloud's error frame and its refusal of the request as the same errors", async () => {
    const { pair, retrieve } = await setUp(undefined, 'error');
    const e = await failure(all(retrieve()));
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({ status: 500, code: 'internal' });
    await echoes(pair);
    // An HTTP refusal before any frame (a stale session): an HttpFailure, as the page's retry needs.
    const stale = await sessionPair();
    const streams = new StreamWorker(() =>
      inProcessStreamWorker(async () =>
        Response.json({ error: 'expired', message: 'the session expired' }, { status: 410 }),
      ),
    );
    const refused = await failure(
      all(stale.client.streamWith('retrieve', {}, (g, o) => streams.open(g, CLOUD, o))),
    );
    expect(refused).toBeInstanceOf(HttpFailure);
    expect(refused).toMatchObject({ status: 410, reason: 'expired' });
  });

  it('stays at most a window of instances ahead of a page that waits', async () => {
    const { pair, workers, retrieve } = await setUp();
    const it = retrieve()[Symbol.asyncIterator]();
    await it.next(); // the page took one and waits
    await tick(100);
    const ahead = workers[0]!.posted.filter((n) => n.kind === 'instance').length;
    expect(ahead).toBe(WINDOW); // the one taken and the next: the page has not asked for more
    expect(ahead).toBeLessThan(instances.length);
    const rest = await all({ [Symbol.asyncIterator]: () => it });
    expect(rest).toHaveLength(instances.length - 1);
    await echoes(pair);
  });

  it('stops when the page leaves or the study is closed, and the session is released in step', async () => {
    const { pair, workers, retrieve, another } = await setUp();
    for await (const _ of retrieve()) break;
    expect(workers[0]!.posted.at(-1)).toMatchObject({ kind: 'done' });
    expect(pair.client.inStep).toBe(true);
    // (The cloud sent frames the page never opened: this session is out of step with it, as after
    // any stream left early; the viewer leaves a retrieval only when the study is closed.)
    const other = await another();
    const abort = new AbortController();
    const aborted = failure(
      (async () => {
        for await (const _ of retrieve(abort.signal, other)) abort.abort();
      })(),
    );
    expect(await aborted).toMatchObject({ name: 'AbortError' });
    expect(other.client.inStep).toBe(true);
    // Nothing holds the session: the next call is sealed at once.
    await other.client.sealRequest(new Uint8Array(0));
  });

  it('fails the stream when the worker dies, the session then out of step; a new worker serves the next', async () => {
    const { pair, workers, streams, retrieve, another } = await setUp();
    const it = retrieve()[Symbol.asyncIterator]();
    await it.next();
    workers[0]!.onerror?.({ message: 'out of memory' });
    expect(await failure(all({ [Symbol.asyncIterator]: () => it }))).toMatchObject({
      message: 'the stream worker failed: out of memory',
    });
    expect(pair.client.inStep).toBe(false);
    expect(await failure(pair.client.request('echo', {}))).toMatchObject({ reason: 'wrong-phase' });
    const fresh = await another();
    const again = await all(
      fresh.client.streamWith('retrieve', {}, (g, o) => streams.open(g, CLOUD, o)),
    );
    expect(workers).toHaveLength(2);
    expect(again.map((g) => g.id)).toEqual(instances.map((i) => i.id));
    expect(fresh.client.inStep).toBe(true);
  });
});
