// A retrieval taken apart by the one function the page and the stream worker both run, and the
// failures it may end with carried across a thread boundary as data: each comes back as the error
// class the page's code tests (a stale session's HTTP refusal is retried, a cut transport resumed,
// a session refusal reported), with its reason.
import { describe, expect, it } from 'vitest';
import { utf8 } from '../bytes.ts';
import { ZtvError } from '../errors.ts';
import { RemoteError, SessionError, type StreamGrant } from '../session/protocol.ts';
import { HttpFailure, isCut, NetworkFailure } from './http.ts';
import { failureData, failureFrom, openRetrieval, type Retrieved } from './retrieval.ts';
import {
  instanceBytes,
  retrievalBody,
  sessionPair,
  streamFetch,
} from '../../../test/session-stream.ts';

const instances = [0, 1, 2].map((i) => ({
  id: `1111111${i}-2222-3333-4444-555555555555`,
  bytes: instanceBytes(i, 3000 * (i + 1)),
}));

async function retrieveWith(body: Uint8Array): Promise<{ got: Retrieved[]; error?: unknown }> {
  const pair = await sessionPair();
  const f = streamFetch((sealed) => pair.frames(sealed, body));
  const got: Retrieved[] = [];
  try {
    for await (const r of pair.client.streamWith('retrieve', {}, (g: StreamGrant, opened) =>
      openRetrieval(g, 'https://cloud.test', opened, f),
    ))
      got.push(r);
  } catch (error) {
    return { got, error };
  }
  return { got };
}

describe('a retrieval opened by openRetrieval', () => {
  it('yields each instance by its Content-Location, then checks the final frame', async () => {
    const { got, error } = await retrieveWith(retrievalBody(instances));
    expect(error).toBeUndefined();
    expect(got.map((g) => g.id)).toEqual(instances.map((i) => i.id));
    expect(got.map((g) => g.bytes)).toEqual(instances.map((i) => i.bytes));
  });

  it('refuses data after the end of the multipart body', async () => {
    const body = retrievalBody(instances);
    const more = new Uint8Array(body.length + 5000);
    more.set(body);
    more.set(utf8('--ztv-test-boundary--\r\n'), body.length); // an epilogue, then 5 kB of anything
    more.fill(7, body.length + 30);
    const { got, error } = await retrieveWith(more);
    expect(got).toHaveLength(3);
    expect(error).toBeInstanceOf(ZtvError);
    expect((error as Error).message).toBe('the cloud sent data after the end of the retrieval');
  });
});

describe('failures carried across threads as data', () => {
  const cut = new TypeError('terminated');
  const refused = new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
  it.each([
    [new SessionError('out-of-order', 'frame 3 arrived where 2 was due'), SessionError],
    [new SessionError('truncated', 'the stream ended without its final frame'), SessionError],
    [new RemoteError(500, 'internal', 'retrieve failed midway'), RemoteError],
    [new HttpFailure(410, 'expired', 'the session expired'), HttpFailure],
    [new HttpFailure(503, 'busy', 'at capacity'), HttpFailure],
    [new NetworkFailure('cloud', 'https://cloud.test'), NetworkFailure],
    [new ZtvError('integrity', 'the retrieval is malformed'), ZtvError],
    [cut, TypeError],
    [refused, TypeError],
    [new Error('anything else'), Error],
  ])('%s comes back as itself', (e, kind) => {
    const back = failureFrom(structuredClone(failureData(e)));
    expect(back).toBeInstanceOf(kind);
    expect(back.message).toBe(e.message);
    expect(isCut(back)).toBe(isCut(e));
    for (const k of ['reason', 'status', 'code', 'party', 'url'] as const)
      expect((back as unknown as Record<string, unknown>)[k]).toEqual(
        (e as unknown as Record<string, unknown>)[k],
      );
  });

  it('an abort comes back as an AbortError', () => {
    const ctl = new AbortController();
    ctl.abort();
    const back = failureFrom(structuredClone(failureData(ctl.signal.reason)));
    expect(back.name).toBe('AbortError');
  });
});
