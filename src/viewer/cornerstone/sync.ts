/**
 * Synchronisation between the viewports of a layout, through @cornerstonejs/tools' synchronizers:
 * scrolling by position (the image slice synchronizer moves each other viewport to its slice nearest
 * the source's Image Position, when their planes are parallel) and window/level (the VOI
 * synchronizer). Only viewports showing one frame of reference are joined: positions of two frames of
 * reference are not comparable, and a CT window means nothing on an MR.
 *
 * One frame of reference: series whose slices share a Frame of Reference UID. Each slice's own UID
 * is kept (some real series, e.g. TCIA's de-identified LIDC-IDRI CT, give every slice another one),
 * so two series are joined when any slice of one shares its UID with a slice of the other; the pair
 * is then registered as sharing coordinates (Cornerstone's spatial registration provider, identity),
 * which is what its slice synchronizer reads before comparing the current images' UIDs.
 */
import { Enums, getRenderingEngine, utilities, type StackViewport } from '@cornerstonejs/core';
import { SynchronizerManager, synchronizers, type Synchronizer } from '@cornerstonejs/tools';

export interface SyncMember {
  readonly engineId: string;
  readonly viewportId: string;
  /** The Frame of Reference UIDs of the series shown (none: never synchronised). */
  readonly frames: readonly string[];
}

export interface LayoutSync {
  /** Rejoins the viewports: each frame of reference shown in two or more viewports gets a group. */
  update(members: readonly SyncMember[], enabled: boolean): void;
  destroy(): void;
}

let syncCount = 0;

/** The groups of viewports to synchronise (two or more each): those sharing a frame of reference. */
export function syncGroups<M extends SyncMember>(members: readonly M[]): M[][] {
  // Union–find over the members, joined through each Frame of Reference UID they show.
  const parent = members.map((_, i) => i);
  const root = (i: number): number => (parent[i] === i ? i : (parent[i] = root(parent[i]!)));
  const owner = new Map<string, number>();
  members.forEach((m, i) => {
    for (const f of m.frames) {
      const j = owner.get(f);
      if (j === undefined) owner.set(f, i);
      else parent[root(i)] = root(j);
    }
  });
  const groups = new Map<number, M[]>();
  members.forEach((m, i) => {
    if (!m.frames.length) return;
    const r = root(i);
    groups.set(r, [...(groups.get(r) ?? []), m]);
  });
  return [...groups.values()].filter((g) => g.length > 1);
}

/**
 * The image slice synchronizer, without echoes. Every viewport is a source and a target; a viewport
 * the synchronizer has just moved fires its own new-image event, which — between series of different
 * spacing — would move the clinician's viewport again, onto the coarser series' slices (1 mm CT
 * scrolled to 5 mm, the 2 mm series at 4 mm, the CT dragged back to 4 mm). The slice it was sent to is
 * remembered, and its arrival there is not passed on.
 */
function createSliceSynchronizer(id: string): Synchronizer {
  /** Viewports on their way to a slice the synchronizer sent them to. */
  const moving = new Set<string>();
  const echoes = new WeakSet<Event>();
  const passed = new WeakSet<Event>();
  const stack = (v: { renderingEngineId: string; viewportId: string }) =>
    getRenderingEngine(v.renderingEngineId)?.getViewport(v.viewportId) as StackViewport | undefined;
  return SynchronizerManager.createSynchronizer(
    id,
    Enums.Events.STACK_NEW_IMAGE,
    async (sync, source, target, event) => {
      if (!echoes.has(event) && !passed.has(event))
        (moving.delete(source.viewportId) ? echoes : passed).add(event);
      if (echoes.has(event)) return;
      // Marked before the jump: the arrival may be announced before the callback returns.
      const before = stack(target)?.getCurrentImageIdIndex();
      moving.add(target.viewportId);
      try {
        await synchronizers.imageSliceSyncCallback(sync, source, target);
      } finally {
        // Not moved (already there): no arrival will come.
        if (stack(target)?.getTargetImageIdIndex() === before) moving.delete(target.viewportId);
      }
    },
  );
}

const IDENTITY = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

const tryTo = (f: () => void) => {
  try {
    f();
  } catch {
    // the viewport is gone already
  }
};

export function createLayoutSync(): LayoutSync {
  const prefix = `ztv-sync-${++syncCount}`;
  let ids: string[] = [];
  let shape = '';
  const clear = () => {
    for (const id of ids) {
      const sync = SynchronizerManager.getSynchronizer(id);
      // Each viewport removed first: Synchronizer.destroy() walks its lists while removing from them
      // and leaves every other viewport's listener behind (a stale synchronizer echoing moves).
      // (A viewport already disabled has no element left to unhook: nothing to remove.)
      if (sync) {
        for (const v of [...sync.getSourceViewports()]) tryTo(() => sync.removeSource(v));
        for (const v of [...sync.getTargetViewports()]) tryTo(() => sync.removeTarget(v));
      }
      SynchronizerManager.destroySynchronizer(id);
    }
    ids = [];
    shape = '';
  };
  return {
    update(members, enabled) {
      const groups = enabled ? syncGroups(members) : [];
      // Rebuilt only when the groups change (not for every slice whose UID arrives).
      const next = JSON.stringify(groups.map((g) => g.map((m) => [m.engineId, m.viewportId])));
      if (next === shape) return;
      clear();
      shape = next;
      let n = 0;
      for (const list of groups) {
        const k = ++n;
        const slice = createSliceSynchronizer(`${prefix}-slice-${k}`);
        const voi = synchronizers.createVOISynchronizer(`${prefix}-voi-${k}`, {
          syncInvertState: true,
          syncColormap: false,
        });
        ids.push(slice.id, voi.id);
        for (const m of list) {
          const at = { renderingEngineId: m.engineId, viewportId: m.viewportId };
          slice.add(at);
          voi.add(at);
          for (const o of list)
            if (o !== m)
              utilities.spatialRegistrationMetadataProvider.add(
                [m.viewportId, o.viewportId],
                IDENTITY as unknown as Parameters<
                  typeof utilities.spatialRegistrationMetadataProvider.add
                >[1],
              );
        }
      }
    },
    destroy: clear,
  };
}
