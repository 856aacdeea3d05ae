/** The `cronwheel` binary: `server`, and the client commands `jobs`, `executions`, `dead-letters`, `audit`, `stats`, `admin`. */
import { CronwheelApiError } from "../client/errors.js";
import { runAdminCommand } from "./admin.js";
import { runDeadLettersCommand, runExecutionsCommand, runJobsCommand } from "./commands.js";
import { runAuditCommand, runStatsCommand } from "./history-commands.js";
import { runServer, SERVER_USAGE, UsageError } from "./server.js";

const USAGE = `usage: cronwheel <command> [options]

commands:
  server         run a node (see: cronwheel server --help)
  jobs           put | get | ls | rm | pause | resume | trigger | preview jobs (cronwheel jobs --help)
  executions     get | ls | cancel | replay executions (cronwheel executions --help)
  dead-letters   ls failed executions (cronwheel dead-letters --help)
  audit          who changed which job or execution, and when (cronwheel audit --help)
  stats          counts, throughput, lateness, failure reasons and backlog (cronwheel stats --help)
  admin          status | move-shard | rebalance | drain: operate a cluster (cronwheel admin --help)

The client commands talk to --url (default $CRONWHEEL_URL, else http://127.0.0.1:7070) with
--token (default $CRONWHEEL_TOKEN); --json prints the server's answer as JSON.
Exit status: 0 ok, 1 the request failed (cronwheel: <code>: <message>), 2 usage error.
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "server":
      await runServer(rest);
      return;
    case "jobs":
      await runJobsCommand(rest);
      return;
    case "executions":
      await runExecutionsCommand(rest);
      return;
    case "dead-letters":
      await runDeadLettersCommand(rest);
      return;
    case "admin":
      await runAdminCommand(rest);
      return;
    case "audit":
      await runAuditCommand(rest);
      return;
    case "stats":
      await runStatsCommand(rest);
      return;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`unknown command '${command}'\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof CronwheelApiError) {
    process.stderr.write(`cronwheel: ${error.code}: ${error.message}\n`);
    process.exit(1);
  }
  // The client commands turn their own flag errors into UsageError; a raw parse error is the server's.
  if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`cronwheel: ${(error as Error).message}\n${error instanceof UsageError ? "" : SERVER_USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`cronwheel: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
