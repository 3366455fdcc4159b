/**
 * Synchronisation between the viewports of a layout: scrolling by position (each other viewport goes
 * to its slice nearest the moving one's Image Position, when their planes are parallel) and
 * window/level (@cornerstonejs/tools' VOI synchronizer, invert included). Only viewports showing one
 * frame of reference are joined: positions of two frames of reference are not comparable, and a CT
 * window means nothing on an MR.
 *
 * One source, by construction: of each group only the **driver** — the viewport the clinician is
 * moving (the active one: a click, the wheel, focus or a key on it makes it so) — is a source of
 * Cornerstone's synchronizers; the others are targets only. A target moved by the synchronizer fires
 * its own new-image and VOI events, and nothing listens to them: no echo can come back (with every
 * viewport a source, each arrival was passed on again — between series of different spacing the
 * 1 mm CT was pulled onto the 2 mm series' slices, 4 arrow presses ended 9 slices on).
 *
 * The slice callback is ours, not Cornerstone's `imageSliceSyncCallback`: that one moves the target
 * with `jumpToSlice`, which takes a delta from the target's current index and adds it to its target
 * index — when an earlier jump is still loading (debounced: the image is not in the cache yet) the two
 * differ and the target overshoots. Ours asks for the nearest slice by its index
 * (`setImageIdIndex`: the last request wins) and does not wait for it, so that Cornerstone's
 * synchronizer, which ignores its sources' events while a callback's promise is pending, never drops
 * a press of the clinician's.
 *
 * One frame of reference: series whose slices share a Frame of Reference UID. Each slice's own UID
 * is kept (some real series, e.g. TCIA's de-identified LIDC-IDRI CT, give every slice another one),
 * so two series are joined when any slice of one shares its UID with a slice of the other; positions
 * are then compared as they are (same patient coordinates).
 */
import {
  Enums,
  getEnabledElementByViewportId,
  getRenderingEngine,
  type StackViewport,
} from '@cornerstonejs/core';
import { SynchronizerManager, synchronizers, type Synchronizer } from '@cornerstonejs/tools';
import { normalOf } from '../study/order.ts';

export interface SyncMember {
  readonly engineId: string;
  readonly viewportId: string;
  /** The Frame of Reference UIDs of the series shown (none: never synchronised). */
  readonly frames: readonly string[];
}

type Vec3 = readonly [number, number, number];

/** Where an image lies: its Image Position and Image Orientation (Patient). */
export interface SliceGeometry {
  readonly position: Vec3;
  readonly orientation: readonly [number, number, number, number, number, number];
}

export interface LayoutSync {
  /** Rejoins the viewports: each frame of reference shown in two or more viewports gets a group. */
  update(members: readonly SyncMember[], enabled: boolean): void;
  /** The viewport the clinician is moving: the only one whose changes reach the others. */
  drive(viewportId: string | undefined): void;
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
 * The slice of `targets` nearest to `source`'s position, or -1: none has a geometry, or the planes are
 * not parallel (within about 2.5°: an axial CT never follows a sagittal MR of its frame of reference).
 */
export function nearestSlice(
  source: SliceGeometry,
  targets: readonly (SliceGeometry | undefined)[],
): number {
  const n = normalOf(source.orientation);
  let best = -1;
  let bestDistance = Infinity;
  targets.forEach((t, i) => {
    if (!t) return;
    const m = normalOf(t.orientation);
    const cos = Math.abs(n[0] * m[0] + n[1] * m[1] + n[2] * m[2]);
    if (cos < 0.999) return;
    const d = Math.hypot(
      t.position[0] - source.position[0],
      t.position[1] - source.position[1],
      t.position[2] - source.position[2],
    );
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  });
  return best;
}

const tryTo = (f: () => void) => {
  try {
    f();
  } catch {
    // the viewport is gone already
  }
};

interface Group {
  readonly slice: Synchronizer;
  readonly voi: Synchronizer;
  readonly members: readonly SyncMember[];
}

/**
 * The layout's synchronisation. `geometryOf` gives an image's position and orientation (undefined:
 * an image without them, never moved nor followed by position).
 */
export function createLayoutSync(
  geometryOf: (imageId: string) => SliceGeometry | undefined,
): LayoutSync {
  const prefix = `ztv-sync-${++syncCount}`;
  let groups: Group[] = [];
  let shape = '';
  let driver: string | undefined;
  const stack = (v: { renderingEngineId: string; viewportId: string }) =>
    getRenderingEngine(v.renderingEngineId)?.getViewport(v.viewportId) as StackViewport | undefined;

  /**
   * The stack each driver showed when last seen: the first image of a new one (a series put into
   * the driver, or its stack rebuilt as slices arrive) is not a move, and moves nobody.
   */
  const stacks = new Map<string, readonly string[]>();
  const newStack = new WeakSet<Event>();

  /** Moves `target` to its slice nearest the source's image: by index, not awaited. */
  const follow = (
    _sync: Synchronizer,
    source: { renderingEngineId: string; viewportId: string },
    target: { renderingEngineId: string; viewportId: string },
    event: Event,
  ) => {
    const s = stack(source);
    const ids = s?.getImageIds();
    if (ids && stacks.get(source.viewportId) !== ids) {
      stacks.set(source.viewportId, ids);
      newStack.add(event);
    }
    if (newStack.has(event)) return;
    const t = stack(target);
    const id = s?.getCurrentImageId();
    const at = id ? geometryOf(id) : undefined;
    if (!t || !at) return;
    const i = nearestSlice(at, t.getImageIds().map(geometryOf));
    if (i >= 0 && i !== t.getCurrentImageIdIndex())
      t.setImageIdIndex(i).then(
        () => t.render(),
        () => undefined, // a slice that cannot be shown says so in its own viewport
      );
  };

  /** Of each group, the driver alone is a source; every member is a target. */
  const applyDriver = () => {
    for (const g of groups)
      for (const sync of [g.slice, g.voi])
        for (const m of g.members) {
          const at = { renderingEngineId: m.engineId, viewportId: m.viewportId };
          if (m.viewportId === driver) sync.addSource(at);
          else if (sync.hasSourceViewport(m.engineId, m.viewportId))
            tryTo(() => sync.removeSource(at));
        }
  };

  const clear = () => {
    for (const g of groups)
      for (const sync of [g.slice, g.voi]) {
        // Each viewport removed first: Synchronizer.destroy() walks its lists while removing from
        // them and leaves listeners behind. (A viewport already disabled has nothing to unhook.)
        for (const v of [...sync.getSourceViewports()]) tryTo(() => sync.removeSource(v));
        for (const v of [...sync.getTargetViewports()]) tryTo(() => sync.removeTarget(v));
        SynchronizerManager.destroySynchronizer(sync.id);
      }
    groups = [];
    shape = '';
  };

  return {
    update(members, enabled) {
      const next = enabled ? syncGroups(members) : [];
      // Rebuilt only when the groups change (not for every slice whose UID arrives).
      const key = JSON.stringify(next.map((g) => g.map((m) => [m.engineId, m.viewportId])));
      if (key === shape) return;
      clear();
      shape = key;
      next.forEach((members, k) => {
        const slice = SynchronizerManager.createSynchronizer(
          `${prefix}-slice-${k}`,
          Enums.Events.STACK_NEW_IMAGE,
          follow,
        );
        const voi = synchronizers.createVOISynchronizer(`${prefix}-voi-${k}`, {
          syncInvertState: true,
          syncColormap: false,
        });
        for (const m of members) {
          const at = { renderingEngineId: m.engineId, viewportId: m.viewportId };
          slice.addTarget(at);
          voi.addTarget(at);
        }
        groups.push({ slice, voi, members });
      });
      applyDriver();
    },
    drive(viewportId) {
      if (viewportId === driver) return;
      driver = viewportId;
      // Its stack now: a new one put into it from here on is not a move. (Taken when it becomes the
      // driver, before the click's series is loaded; not when the groups are rebuilt, which happens
      // after a new series has started to load.)
      if (viewportId) {
        const v = getEnabledElementByViewportId(viewportId)?.viewport as StackViewport | undefined;
        stacks.set(viewportId, v?.getImageIds() ?? []);
      }
      applyDriver();
    },
    destroy: clear,
  };
}
