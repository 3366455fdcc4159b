/**
 * Fault injection for the crash tests: `ZTV_FAULT=<point>[,<point>…]` makes a service stop dead at
 * the named points of its write paths — it says so on stdout (`{"fault":"<point>"}`) and then waits
 * forever, so that a test can `kill -9` it at exactly that moment and check what survived.
 * `ZTV_FAULT_TRIGGERS=<dir>` arms every point on demand instead: a point stops the service only when
 * the file `<dir>/<point>` exists, and removes it as it stops (one stop per file), so that a long crash
 * campaign can aim at a point trial after trial without restarting the service to arm it, and a
 * service restarted with the same environment does not stop there again. Unset (the default), every
 * point is a no-op.
 */
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';

/** The points a service can stop at. */
export const FAULT_POINTS = [
  'cloud:after-blob-write',
  'cloud:before-redemption-commit',
  // A retrieval from its first instance, once two instances have been sent (a resumed one goes on).
  'cloud:mid-retrieval',
  'producer:before-cloud-upload',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

function armed(env: NodeJS.ProcessEnv): Set<string> {
  const list = (env.ZTV_FAULT ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of list)
    if (!(FAULT_POINTS as readonly string[]).includes(p))
      throw new Error(`ZTV_FAULT names an unknown point ${p} (known: ${FAULT_POINTS.join(', ')})`);
  return new Set(list);
}

/** Says so on stdout, then never settles: the service is stopped dead at `point`. */
function stopDead(point: FaultPoint): Promise<void> {
  process.stdout.write(`${JSON.stringify({ fault: point })}\n`);
  return new Promise<void>(() => undefined);
}

/** The trigger file that arms `point` once under `ZTV_FAULT_TRIGGERS=dir`. */
export const faultTrigger = (dir: string, point: FaultPoint): string =>
  join(dir, point.replace(':', '-'));

/** A hook for `point`: undefined when the point is not armed (nothing runs in production). */
export function faultHook(
  point: FaultPoint,
  env: NodeJS.ProcessEnv = process.env,
): (() => Promise<void>) | undefined {
  if (armed(env).has(point)) return () => stopDead(point);
  const triggers = env.ZTV_FAULT_TRIGGERS;
  if (!triggers) return undefined;
  const file = faultTrigger(triggers, point);
  return () => {
    try {
      unlinkSync(file); // the trigger is taken by the first request to reach the point
    } catch {
      return Promise.resolve();
    }
    return stopDead(point);
  };
}
