// Vite configuration of the browser viewer (src/viewer): React, ES-module workers.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist/viewer', sourcemap: true },
  worker: { format: 'es' },
});
