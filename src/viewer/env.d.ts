/** Build-time declarations of the viewer: Vite's client types and the `define`d constants (absent under Vitest). */
/// <reference types="vite/client" />
declare const __ZTV_ROOT_SHA256__: string | undefined;
/** The decode workers' warm-up material, made at build time (scripts/vite-plugins.ts). */
declare module 'virtual:ztv-warmup' {
  // An ambient module declaration cannot import a relative module, only name its type inline.
  // eslint-disable-next-line @typescript-eslint/consistent-type-imports
  const material: import('./pipeline/warmup.ts').WarmUpMaterial;
  export default material;
}
