/**
 * The quick test tier, `npm test`: unit, property and integration tests (real servers, real etcd),
 * every file under test/ but test/faults/. Budget: 10 minutes on the project's 2-core machine from a
 * clean clone (README.md, "Tests", has the measured figure). Long cluster-fault and jepsen-style
 * runs go in test/faults/, the fault tier (vitest.faults.config.ts, `npm run test:faults`).
 */
import { defineConfig } from "vitest/config";

/** What both tiers share. */
export const sharedTestOptions = {
  // One seed for every fast-check property in a run, printed at the start; FC_SEED replays it.
  globalSetup: ["test/support/fast-check-seed.global.ts"],
  setupFiles: ["test/support/fast-check-seed.setup.ts"],
  // Integration tests start real server processes; keep them from starving each other on 2 cores.
  fileParallelism: false,
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    ...sharedTestOptions,
    include: ["test/**/*.test.ts"],
    exclude: ["test/faults/**"],
  },
});
