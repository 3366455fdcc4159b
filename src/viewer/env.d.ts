/** Build-time declarations of the viewer: Vite's client types and the `define`d constants (absent under Vitest). */
/// <reference types="vite/client" />
declare const __ZTV_ROOT_SHA256__: string | undefined;
