// Vite configuration of the browser viewer (src/viewer): React, ES-module workers, Cornerstone3D's
// dependency quirks, and the optional root pin (ZTV_ROOT_SHA256, the SHA-256 of the federation root's
// DER) compiled into the build (docs/viewer.md).
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const pin = process.env.ZTV_ROOT_SHA256 ?? '';
if (pin && !/^[0-9a-fA-F]{64}$/.test(pin))
  throw new Error('ZTV_ROOT_SHA256 must be the 64 hex digits of the root certificate SHA-256');

export default defineConfig({
  plugins: [react()],
  define: { __ZTV_ROOT_SHA256__: JSON.stringify(pin.toLowerCase()) },
  build: { outDir: 'dist/viewer', sourcemap: true, chunkSizeWarningLimit: 10_000 },
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] },
});
