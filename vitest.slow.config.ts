import { defineConfig } from 'vitest/config';

/** `npm run test:slow`: soak-sized tests kept out of `npm test` (see test/slow/). */
export default defineConfig({
  test: {
    include: ['test/slow/**/*.test.ts', 'test/integration/resilience-memory.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
