// A session's stream opened elsewhere (issue 15, decision 4): the session grants one stream — its
// sealed request, its receive key, the next frame number — to whoever opens the frames (the viewer's
// stream worker), holds its turn until that opener reports the frame number after the last it
// opened, and goes on from there. The grant survives structured cloning (what posting it to a worker
// does) with its key still not extractable; every frame tampered, reordered, replayed, oversized or
// missing is refused with the session's own reasons and reported by the session.
import { describe, expect, it } from 'vitest';
import { FrameReader, RemoteError, SessionError, type StreamGrant } from './protocol.ts';
import { sessionPair, type Pair } from '../../../test/session-stream.ts';

const payload = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 13) & 0xff);

/** The opener a worker runs, given a clone of the grant as posting it would make. */
const elsewhere = (
  pair: Pair,
  alter?: (frames: Uint8Array[]) => Uint8Array[],
  seen?: StreamGrant[],
) =>
  async function* (grant: StreamGrant, opened: (seq: number) => void) {
    const g = structuredClone(grant);
    seen?.push(g);
    const reader = new FrameReader(g);
    try {
      let frames = await pair.frames(g.request, payload);
      if (alter) frames = alter(frames);
      yield* reader.open(frames);
    } finally {
      opened(reader.seq);
    }
  };

const collect = async (it: AsyncIterable<Uint8Array>) => {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
};

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('a stream opened elsewhere', () => {
  it('opens with a cloned grant, holds the session meanwhile, and the session goes on from the reported frame', async () => {
    const pair = await sessionPair();
    const { client } = pair;
    await client.request('echo', { n: 1 });
    const grants: StreamGrant[] = [];
    const order: string[] = [];
    const stream = client.streamWith('retrieve', { r: 1 }, elsewhere(pair, undefined, grants));
    const first = await stream.next(); // the stream has its turn now
    const during = client.request('echo', { n: 2 }).then(() => order.push('request'));
    await new Promise((r) => setTimeout(r, 20));
    order.push('stream still open');
    const rest = await collect(stream);
    order.push('stream ended');
    await during;
    // The call issued meanwhile waited for the stream's end, then worked: the sequence was right.
    expect(order).toEqual(['stream still open', 'stream ended', 'request']);
    expect(Buffer.concat([first.value as Uint8Array, rest]).equals(Buffer.from(payload))).toBe(
      true,
    );
    const g = grants[0]!;
    expect(g.seq).toBe(1); // one reply before it
    expect(g.sessionId).toBe(client.id);
    expect(g.key.extractable).toBe(false);
    await expect(crypto.subtle.exportKey('raw', g.key)).rejects.toThrow();
    expect(await client.request('echo', { n: 3 })).toMatchObject({ echo: { n: 3 } });
    expect(pair.refusals).toEqual([]);
  });

  it.each([
    ['a tampered frame', 'bad-message', 1, (f: Uint8Array[]) => ((f[1]![20]! ^= 1), f)],
    ['two frames swapped', 'out-of-order', 0, (f: Uint8Array[]) => [f[1]!, f[0]!, ...f.slice(2)]],
    ['a frame replayed', 'out-of-order', 1, (f: Uint8Array[]) => [f[0]!, ...f]],
    ['no final frame', 'truncated', 3, (f: Uint8Array[]) => f.slice(0, -1)],
    [
      'a frame longer than a packet',
      'bad-message',
      0,
      (f: Uint8Array[]) => {
        new DataView(f[0]!.buffer, f[0]!.byteOffset).setUint32(4, 4096 + 65);
        return f;
      },
    ],
  ])(
    'refuses %s (%s), reported by the session, and counts the frames opened before',
    async (_, reason, opened, alter) => {
      const pair = await sessionPair();
      const grants: StreamGrant[] = [];
      const e = await failure(
        collect(pair.client.streamWith('retrieve', {}, elsewhere(pair, alter, grants))),
      );
      expect(e).toBeInstanceOf(SessionError);
      expect((e as SessionError).reason).toBe(reason);
      expect(pair.refusals).toEqual([`client ${reason}`]);
      // The session goes on from the opener's count: the frame due next is grant.seq + opened
      // (a message numbered so is opened and fails its seal; one numbered after is out of order).
      const due = grants[0]!.seq + opened;
      const forged = { sessionId: pair.client.id, seq: due, data: 'AAAAAAAAAAAAAAAAAAAAAA' };
      expect(await failure(pair.client.openResponse({ ...forged, seq: due + 1 }))).toMatchObject({
        reason: 'out-of-order',
      });
      expect(await failure(pair.client.openResponse(forged))).toMatchObject({
        reason: 'bad-message',
      });
    },
  );

  it('ends on an error frame with the remote error, not a session refusal', async () => {
    const pair = await sessionPair();
    const e = await failure(
      collect(
        pair.client.streamWith('retrieve', {}, async function* (grant, opened) {
          const reader = new FrameReader(structuredClone(grant));
          try {
            yield* reader.open(await pair.frames(grant.request, payload, 'error'));
          } finally {
            opened(reader.seq);
          }
        }),
      ),
    );
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({ status: 500, code: 'internal', message: 'retrieve failed midway' });
    expect(pair.refusals).toEqual([]);
    expect(await pair.client.request('echo', { n: 1 })).toMatchObject({ echo: { n: 1 } });
  });

  it('lets the next call through when the consumer leaves early', async () => {
    const pair = await sessionPair();
    const reported: number[] = [];
    const s = pair.client.streamWith('retrieve', {}, async function* (grant, opened) {
      yield* elsewhere(pair)(grant, (n) => (reported.push(n), opened(n)));
    });
    for await (const _ of s) break;
    expect(reported).toEqual([1]); // one frame opened
    expect(pair.client.inStep).toBe(true);
    // Not held any more: the next call is sealed at once (its answer would be out of step with
    // the frames the server sent meanwhile, as for any stream left early).
    expect((await pair.client.sealRequest(new Uint8Array(0))).seq).toBe(1);
  });

  it('is out of step, and refuses further calls, when the opener never reports', async () => {
    const pair = await sessionPair();
    const e = await failure(
      collect(
        pair.client.streamWith('retrieve', {}, async function* () {
          yield new Uint8Array(1);
          throw new Error('the stream worker failed');
        }),
      ),
    );
    expect((e as Error).message).toBe('the stream worker failed');
    expect(pair.client.inStep).toBe(false);
    expect(await failure(pair.client.request('echo', {}))).toMatchObject({ reason: 'wrong-phase' });
  });
});
