/**
 * The fault tier, `npm run test:faults`: the long cluster-fault runs (a leader cut off from etcd,
 * power loss and corrupted logs on a three-node cluster, a herd with a failover) and the
 * jepsen-style matrix (each fault alone against a real cluster, judged by the history checker).
 * About 11 minutes on the project's 2-core machine; `.ci/run` runs it after the quick tier.
 */
import { defineConfig } from "vitest/config";
import { sharedTestOptions } from "./vitest.config.js";

export default defineConfig({
  test: {
    ...sharedTestOptions,
    include: ["test/faults/**/*.test.ts"],
  },
});
