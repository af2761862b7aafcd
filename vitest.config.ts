import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Long runs, on demand only (never collected, so never reported as skipped):
    // MF_SOAK=1 for the 200,000-connection soak, MF_TESTSSL=1 for testssl.sh.
    exclude: [
      '**/node_modules/**',
      ...(process.env.MF_SOAK === '1' ? [] : ['test/hardening/soak.test.ts']),
      ...(process.env.MF_TESTSSL === '1' ? [] : ['test/hardening/testssl.test.ts']),
    ],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Native tests bind loopback ports and e2e tests share one Cyrus: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
    // scripts/sanitize.sh: the ASan runtime in the workers, which load the addon
    // (and so in what they start), not in vitest's own process.
    ...(process.env.MF_WORKER_PRELOAD ? { env: { LD_PRELOAD: process.env.MF_WORKER_PRELOAD } } : {}),
  },
});
