import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Native tests bind loopback ports and e2e tests share one Cyrus: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
