/**
 * Synchronisation between the viewports of a layout, through @cornerstonejs/tools' synchronizers:
 * scrolling by position (the image slice synchronizer moves each other viewport to its slice nearest
 * the source's Image Position, when their planes are parallel) and window/level (the VOI
 * synchronizer). Only viewports showing one frame of reference are joined: positions of two frames of
 * reference are not comparable, and a CT window means nothing on an MR.
 */
import { SynchronizerManager, synchronizers } from '@cornerstonejs/tools';

export interface SyncMember {
  readonly engineId: string;
  readonly viewportId: string;
  /** The frame of reference of the series shown, or none (never synchronised). */
  readonly frameOfReference?: string;
}

export interface LayoutSync {
  /** Rejoins the viewports: each frame of reference shown in two or more viewports gets a group. */
  update(members: readonly SyncMember[], enabled: boolean): void;
  destroy(): void;
}

let syncCount = 0;

/** The groups of viewports to synchronise: frame of reference → its viewports (two or more). */
export function syncGroups(members: readonly SyncMember[]): Map<string, SyncMember[]> {
  const by = new Map<string, SyncMember[]>();
  for (const m of members) {
    if (!m.frameOfReference) continue;
    const list = by.get(m.frameOfReference) ?? [];
    list.push(m);
    by.set(m.frameOfReference, list);
  }
  for (const [k, list] of by) if (list.length < 2) by.delete(k);
  return by;
}

export function createLayoutSync(): LayoutSync {
  const prefix = `ztv-sync-${++syncCount}`;
  let ids: string[] = [];
  const clear = () => {
    for (const id of ids) SynchronizerManager.destroySynchronizer(id);
    ids = [];
  };
  return {
    update(members, enabled) {
      clear();
      if (!enabled) return;
      let n = 0;
      for (const list of syncGroups(members).values()) {
        const k = ++n;
        const slice = synchronizers.createImageSliceSynchronizer(`${prefix}-slice-${k}`);
        const voi = synchronizers.createVOISynchronizer(`${prefix}-voi-${k}`, {
          syncInvertState: true,
          syncColormap: false,
        });
        ids.push(slice.id, voi.id);
        for (const m of list) {
          const at = { renderingEngineId: m.engineId, viewportId: m.viewportId };
          slice.add(at);
          voi.add(at);
        }
      }
    },
    destroy: clear,
  };
}
