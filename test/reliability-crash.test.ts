// The crash campaign's short slice (bench/reliability/crash.ts; the full campaign is
// `npm run bench -- reliability`): `kill -9` from outside of the cloud during outsourcing at a random
// moment, of the producer stopped dead at its named fault point before the cloud upload, and of the
// cloud stopped dead mid-retrieval at its point. Each comes back by itself; nothing acknowledged is
// lost, nothing is stored twice or left partial, no blob is orphaned, every audit chain is intact,
// and the retrieval completes with every instance verified.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crashTrials, cycle, type Kill } from '../bench/reliability/crash.ts';
import { faultHook, faultTrigger } from '../src/services/common/faults.ts';

const PLAN: Kill[] = [
  { service: 'cloud', phase: 'outsourcing', how: 'timer' },
  { service: 'producer', phase: 'outsourcing', how: 'producer:before-cloud-upload' },
  { service: 'cloud', phase: 'retrieval', how: 'cloud:mid-retrieval' },
];

describe('crash campaign, short slice', () => {
  it('survives kill -9 of the cloud and the producer mid-operation without loss', async () => {
    const f = await crashTrials(PLAN.length, false, 17, undefined, (i) => PLAN[i]!);
    expect(f.defects).toEqual([]);
    expect(f.trials).toBe(PLAN.length);
    // Each kill was a real death that the supervisor repaired, and each fault point was reached:
    // the service stopped there and was killed there.
    expect(f.restarts).toBe(PLAN.length);
    for (const v of Object.values(f.by)) expect(v).toMatchObject({ trials: 1, missed: 0 });
    expect(f.by['producer|outsourcing|producer:before-cloud-upload']?.midOperation).toBe(1);
    expect(f.by['cloud|retrieval|cloud:mid-retrieval']?.midOperation).toBe(1);
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

  it('visits every service in each phase, by timer and at each fault point on its way', () => {
    const seen = new Set(Array.from({ length: 48 }, (_, i) => JSON.stringify(cycle(i))));
    // 4 services × 2 phases by timer, and the 4 fault points.
    expect(seen.size).toBe(12);
    for (const how of [
      'producer:before-cloud-upload',
      'cloud:after-blob-write',
      'cloud:before-redemption-commit',
      'cloud:mid-retrieval',
    ])
      expect([...seen].some((k) => k.includes(how))).toBe(true);
  });
});

describe('fault points armed by trigger files', () => {
  it('stop only when their file exists, once per file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ztv-faults-'));
    try {
      const hook = faultHook('cloud:mid-retrieval', { ZTV_FAULT_TRIGGERS: dir })!;
      expect(faultHook('cloud:mid-retrieval', {})).toBeUndefined();
      await expect(hook()).resolves.toBeUndefined(); // not armed: goes on
      const file = faultTrigger(dir, 'cloud:mid-retrieval');
      writeFileSync(file, '');
      const stopped = await Promise.race([
        hook().then(() => 'went on'),
        new Promise((r) => setTimeout(() => r('stopped'), 200)),
      ]);
      expect(stopped).toBe('stopped');
      expect(existsSync(file)).toBe(false); // taken: the next request goes on
      await expect(hook()).resolves.toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
