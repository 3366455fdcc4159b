// Vite configuration of the browser viewer (src/viewer): React, ES-module workers with their warm-up
// material made at build time (scripts/vite-plugins.ts), Cornerstone3D's dependency quirks, and the
// optional root pin (ZTV_ROOT_SHA256, the SHA-256 of the federation root's DER) compiled into the
// build (docs/viewer.md).
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { viewerPlugins } from './scripts/vite-plugins.ts';

const pin = process.env.ZTV_ROOT_SHA256 ?? '';
if (pin && !/^[0-9a-fA-F]{64}$/.test(pin))
  throw new Error('ZTV_ROOT_SHA256 must be the 64 hex digits of the root certificate SHA-256');

// Rolldown reports callbacks that take a large part of a build: here the worker's bundle (built
// inside a transform of the page's) and the warm-up material (a 512x512 slice protected, about 1 s),
// both expected, so the report is off rather than printed at every `npm start`.
const rolldownOptions = { checks: { bundlerTimings: false } };

export default defineConfig({
  plugins: [react(), ...viewerPlugins()],
  define: { __ZTV_ROOT_SHA256__: JSON.stringify(pin.toLowerCase()) },
  build: { outDir: 'dist/viewer', sourcemap: true, chunkSizeWarningLimit: 10_000, rolldownOptions },
  worker: { format: 'es', plugins: viewerPlugins, rolldownOptions },
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] },
});
