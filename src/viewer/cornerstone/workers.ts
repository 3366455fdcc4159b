/**
 * Coordination with Cornerstone's own workers: the dicom-image-loader registers its decode workers in
 * core's shared web worker manager when it is initialised. The viewer never initialises it (it loads
 * images through its own `zt:` loader), so this counts zero — but the decode pool is sized after
 * counting, so that a build that also shows plain DICOM would not oversubscribe the cores.
 */
import { getWebWorkerManager } from '@cornerstonejs/core';

export function otherWorkers(): number {
  const registry = (
    getWebWorkerManager() as unknown as {
      workerRegistry?: Record<string, { instances?: unknown[]; maxWorkerInstances?: number }>;
    }
  ).workerRegistry;
  let n = 0;
  for (const w of Object.values(registry ?? {}))
    n += Math.max(w.instances?.length ?? 0, w.maxWorkerInstances ?? 0);
  return n;
}
