import { defineConfig } from 'vitest/config';
import { warmUpMaterial } from './scripts/vite-plugins.ts';

export default defineConfig({
  // The decode job's warm-up material, made once per run as the viewer build makes it.
  plugins: [warmUpMaterial()],
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'e2e/**/*.e2e.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
