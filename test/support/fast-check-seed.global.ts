/**
 * Picks the one fast-check seed of a test run, in vitest's main process, before any test file
 * starts: `FC_SEED` when set (to replay a failure), else a fresh random one. Every property in the
 * run uses it (test/support/fast-check-seed.setup.ts), and it is printed here, so a run that failed
 * on a random input can be repeated exactly: `FC_SEED=<seed> npm test` (or `npm run test:faults`,
 * or `bash .ci/run`). fast-check's own failure message repeats it beside the counterexample.
 */
import type { TestProject } from "vitest/node";

export function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed)) throw new Error(`FC_SEED must be an integer (fast-check prints one on failure), got '${text}'`);
  return seed;
}

export default function setup(project: TestProject): void {
  const given = parseSeed(process.env.FC_SEED);
  const seed = given ?? (Math.random() * 2 ** 32) | 0;
  project.provide("fastCheckSeed", seed);
  console.log(`fast-check seed ${seed}${given === undefined ? " (random)" : " (from FC_SEED)"}; to replay this run's properties, put FC_SEED=${seed} before the same command`);
}

declare module "vitest" {
  export interface ProvidedContext {
    fastCheckSeed: number;
  }
}
