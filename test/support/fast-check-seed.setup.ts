/**
 * Runs in each test file's worker before its tests: every fast-check property of the run starts
 * from the one seed chosen and printed by test/support/fast-check-seed.global.ts, so a failure
 * seen in CI replays with `FC_SEED=<seed>`.
 */
import fc from "fast-check";
import { inject } from "vitest";

fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: inject("fastCheckSeed") });
