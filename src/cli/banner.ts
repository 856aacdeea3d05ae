/**
 * What `cronwheel server` prints on stdout once it listens: where the node is, and the first four
 * things a new user does with it — a cron job, an execution, a worker, a look at what ran — as
 * commands that work against this very node when pasted (test/quick-start.test.ts runs them).
 * It is plain text for the person who started the node, written once beside the JSON log lines.
 *
 * The `API:` line is also how tests and benchmarks learn the port of a node started on port 0.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface BannerFacts {
  /** `http://HOST:PORT` of this node's HTTP and worker endpoint. */
  base: string;
  /** `standalone`, or `cluster 'NAME' as NODE`. */
  mode: string;
  shards: number;
  dataDir: string;
  /** Whether the node has a token file: then every command needs a token. */
  authEnabled: boolean;
}

/** The example worker shipped with the package (docs/examples/worker.mjs), when it is there. */
function exampleWorkerPath(): string | undefined {
  const file = fileURLToPath(new URL("../../../docs/examples/worker.mjs", import.meta.url));
  if (!fs.existsSync(file)) return undefined;
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
}

export function startupBanner(f: BannerFacts): string {
  const auth = f.authEnabled ? ` -H "authorization: Bearer $CRONWHEEL_TOKEN"` : "";
  const json = ` -H 'content-type: application/json'${auth}`;
  const worker = exampleWorkerPath();
  const lines = [
    ``,
    `Cronwheel is running (${f.mode}, ${f.shards} shards, data in ${f.dataDir}).`,
    `  API:     ${f.base}/v1   health: ${f.base}/healthz   metrics: ${f.base}/metrics`,
    f.authEnabled
      ? `  Auth:    on (--tokens): the commands below take the token from $CRONWHEEL_TOKEN (role admin; or client for 1, 2 and 4, worker for 3)`
      : `  Auth:    off (no --tokens file): every request is tenant 'default'`,
    ``,
    `  1. A cron job that fires every 5 seconds on queue 'demo':`,
    `       curl -X PUT ${f.base}/v1/jobs/hello${json} \\`,
    `         -d '{"queue":"demo","cron":"*/5 * * * * *","payload":{"hello":"cron"}}'`,
    `  2. One execution on queue 'demo', now:`,
    `       curl -X POST ${f.base}/v1/executions${json} \\`,
    `         -d '{"queue":"demo","payload":{"hello":"now"}}'`,
    ...(worker
      ? [
          `  3. A worker for queue 'demo' (in another terminal; it logs each execution it runs):`,
          `       CRONWHEEL_URLS=${f.base} CRONWHEEL_QUEUES=demo node ${worker}`,
        ]
      : [`  3. A worker for queue 'demo': see "Quick start" in the package's README.md (Worker from "cronwheel/client").`]),
    `  4. What ran, newest first:`,
    `       curl '${f.base}/v1/executions?queue=demo'${auth}`,
    ``,
    `  Next: README.md "Quick start" (the same from TypeScript), docs/api.md (every field and error),`,
    `        docs/workers.md (workers and their guarantees), docs/operations.md (clusters, flags).`,
    `  Stop with Ctrl-C (a clean stop snapshots every shard for a fast restart).`,
    ``,
    ``,
  ];
  return lines.join("\n");
}
