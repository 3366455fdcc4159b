/**
 * React binding of a StudySession: the first change after a quiet spell re-renders at once (the first
 * verified image must not wait for a frame), later ones at most every 50 ms while images stream.
 */
import { useSyncExternalStore } from 'react';
import type { StudySession } from './session.ts';

const PERIOD_MS = 50;

export function useStudy(study: StudySession): number {
  return useSyncExternalStore(
    (notify) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let last = 0;
      const off = study.subscribe(() => {
        if (timer) return;
        if (performance.now() - last >= PERIOD_MS) {
          last = performance.now();
          notify();
          return;
        }
        timer = setTimeout(
          () => {
            timer = undefined;
            last = performance.now();
            notify();
          },
          Math.max(0, PERIOD_MS - (performance.now() - last)),
        );
      });
      return () => {
        off();
        if (timer) clearTimeout(timer);
      };
    },
    () => study.snapshot,
  );
}
