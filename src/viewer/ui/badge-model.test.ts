// The badge states, from real verdicts of a real protected image (verified, tampered pixels,
// unknown signer) and the clinician's expected trace (own ticket, someone else's, missing).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { toHex } from '../../core/bytes.ts';
import {
  openProtected,
  pixelKey,
  protect,
  traceIdFrom,
  traceProtected,
  verifyProtected,
} from '../../core/protect/index.ts';
import { badgeModel, pseudonymisedFor } from './badge-model.ts';

let keys: TestKeys;
let plain: Uint8Array;
let traced: Uint8Array;
let key: Uint8Array;
const mine = traceIdFrom('ticket-of-dr-a');

beforeAll(async () => {
  keys = await testKeys();
  const p = await protect(new Uint8Array(readFileSync(samplePath('small/CT_small.dcm'))), {
    signer: keys.producer,
    pseudonymKey: keys.pseudonymKey,
  });
  plain = p.bytes;
  key = p.imageKey;
  traced = await traceProtected(p.bytes, { signer: keys.cloud, traceId: mine });
});

describe('integrity badge', () => {
  it('Verified names producer, cloud and "your ticket"', async () => {
    const v = (await openProtected(traced, { resolver: keys.resolver, imageKey: key })).verdict;
    const b = badgeModel(v, { expectedTrace: toHex(mine) });
    expect(b.state).toBe('verified');
    expect(b.title).toMatch(/^Verified/);
    expect(b.lines.join('\n')).toMatch(/CN=Test Producer[\s\S]*CN=Test Cloud[\s\S]*your ticket/);
  });

  it('Verified — pseudonymised with the pixel key of a research ticket, which names the purpose', async () => {
    const v = (await openProtected(traced, { resolver: keys.resolver, imageKey: pixelKey(key) }))
      .verdict;
    const b = badgeModel(v, { expectedTrace: toHex(mine) });
    expect(b.state).toBe('verified');
    expect(b.title).toBe('Verified — pseudonymised');
    expect(b.lines.at(-1)).toMatch(/identity stays encrypted/);
    expect(pseudonymisedFor('HRESCH')).toBe('Pseudonymised for research');
    expect(pseudonymisedFor('PUBHLTH')).toBe('Pseudonymised for public health');
    // The image key: the identity is restored, and the badge says nothing of pseudonyms.
    const full = (await openProtected(traced, { resolver: keys.resolver, imageKey: key })).verdict;
    expect(badgeModel(full).title).toBe('Verified');
  });

  it('Tampered when pixels changed, with the tiles', async () => {
    const bad = traced.slice();
    bad[bad.length - 3]! ^= 1;
    const b = badgeModel(await verifyProtected(bad, { resolver: keys.resolver }), {
      expectedTrace: toHex(mine),
    });
    expect(b.state).toBe('tampered');
    expect(b.title).toMatch(/^Tampered — pixels/);
    expect(b.lines.join('\n')).toMatch(/tampered tile/);
  });

  it("Tampered when the trace is another clinician's ticket or missing", async () => {
    const theirs = await traceProtected(plain, {
      signer: keys.cloud,
      traceId: traceIdFrom('ticket-of-dr-b'),
    });
    const v = await verifyProtected(theirs, { resolver: keys.resolver });
    expect(v.status).toBe('verified'); // valid in itself…
    const b = badgeModel(v, { expectedTrace: toHex(mine) });
    expect(b.state).toBe('tampered'); // …but not what this ticket asked for
    expect(b.lines).toContain("the trace is not this clinician's ticket");
    const none = badgeModel(await verifyProtected(plain, { resolver: keys.resolver }), {
      expectedTrace: toHex(mine),
    });
    expect(none.lines).toContain('the cloud did not insert the trace of this ticket');
  });

  it('Unverifiable when the producer is not trusted', async () => {
    const stranger = await testKeys();
    const b = badgeModel(await verifyProtected(traced, { resolver: stranger.resolver }));
    expect(b.state).toBe('unverifiable');
    expect(b.title).toBe('Unverifiable');
    expect(b.lines[0]).toMatch(/not trusted/);
  });
});
