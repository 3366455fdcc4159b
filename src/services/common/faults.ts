/**
 * Fault injection for the crash tests: `ZTV_FAULT=<point>[,<point>…]` makes a service stop dead at
 * the named points of its write paths — it says so on stdout (`{"fault":"<point>"}`) and then waits
 * forever, so that a test can `kill -9` it at exactly that moment and check what survived. Unset (the
 * default), every point is a no-op.
 */

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

/** A hook for `point`: undefined when the point is not armed (nothing runs in production). */
export function faultHook(
  point: FaultPoint,
  env: NodeJS.ProcessEnv = process.env,
): (() => Promise<void>) | undefined {
  if (!armed(env).has(point)) return undefined;
  return () => {
    process.stdout.write(`${JSON.stringify({ fault: point })}\n`);
    return new Promise<void>(() => undefined);
  };
}
