// The crash campaign's short slice (bench/reliability/crash.ts; the full campaign is
// `npm run bench -- reliability`): `kill -9` from outside of the cloud and of the producer of a
// supervised federation during outsourcing, and of the cloud during a retrieval. Each comes back by
// itself; nothing acknowledged is lost, nothing is stored twice or left partial, no blob is orphaned,
// every audit chain is intact, and the retrieval completes with every instance verified.
import { describe, expect, it } from 'vitest';
import { crashTrials, type Phase } from '../bench/reliability/crash.ts';
import type { PartyName } from '../src/services/common/config.ts';

const PLAN: { service: PartyName; phase: Phase }[] = [
  { service: 'cloud', phase: 'outsourcing' },
  { service: 'producer', phase: 'outsourcing' },
  { service: 'cloud', phase: 'retrieval' },
];

describe('crash campaign, short slice', () => {
  it('survives kill -9 of the cloud and the producer mid-operation without loss', async () => {
    const f = await crashTrials(PLAN.length, false, 17, undefined, (i) => PLAN[i]!);
    expect(f.defects).toEqual([]);
    expect(f.trials).toBe(PLAN.length);
    // Each kill was a real death that the supervisor repaired.
    expect(f.restarts).toBe(PLAN.length);
    expect(f).toMatchObject({
      lost: 0,
      duplicated: 0,
      unverified: 0,
      partial: 0,
      orphans: 0,
      chainBreaks: 0,
      incompleteRetrievals: 0,
      retrievals: 1,
    });
  }, 300_000);
});
