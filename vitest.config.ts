import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration files each start their own NATS, registry and worker; two at a time fit 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
