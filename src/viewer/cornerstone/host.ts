/**
 * The viewport of a sign-in, made once and kept: Cornerstone's rendering engine and its WebGL context
 * are created when the clinician signs in, in a parked off-screen element, and the warm-up image is
 * drawn there (shaders compiled) — so that none of it sits between a ticket and its first image. The
 * study viewer attaches the element to its stage and parks it again when the study closes.
 */
import { ensureZtLoader, WARMUP_IMAGE_ID } from './images.ts';
import { createStackViewer, type StackViewer } from './viewer.ts';

export interface ViewportHost {
  /** The element Cornerstone draws into (data-testid="viewport"). */
  readonly element: HTMLDivElement;
  readonly viewer: StackViewer;
  /** Moves the viewport into `parent` (the study viewer's stage), beneath its overlays. */
  attach(parent: HTMLElement): void;
  /** Parks it off-screen again, showing nothing of the study. */
  park(): void;
  destroy(): void;
}

export function createViewportHost(): ViewportHost {
  ensureZtLoader();
  const parking = document.createElement('div');
  parking.setAttribute('aria-hidden', 'true');
  parking.style.cssText =
    'position:fixed;left:-10000px;top:0;width:512px;height:512px;visibility:hidden;pointer-events:none';
  document.body.appendChild(parking);
  const element = document.createElement('div');
  element.className = 'viewport';
  element.dataset.testid = 'viewport';
  parking.appendChild(element);
  const viewer = createStackViewer(element);
  const showWarmup = () => viewer.setImages([WARMUP_IMAGE_ID]).catch(() => undefined);
  void showWarmup();
  // Attaching to the stage resizes the element while it still holds the warm-up image: that image
  // is not drawn again (about 0.1 s of the page's thread, with software WebGL, just as the ticket's
  // redemption answers); the study's first image is drawn at the new size.
  const resize = new ResizeObserver(() =>
    viewer.resize(viewer.viewport.getCurrentImageId() !== WARMUP_IMAGE_ID),
  );
  resize.observe(element);
  return {
    element,
    viewer,
    attach(parent) {
      if (element.parentElement !== parent) parent.insertBefore(element, parent.firstChild);
    },
    park() {
      parking.appendChild(element);
      void showWarmup();
    },
    destroy() {
      resize.disconnect();
      viewer.destroy();
      parking.remove();
    },
  };
}
