/** The `cronwheel` binary: `server` now; job, execution and admin commands come with later issues. */
import { runServer, SERVER_USAGE, UsageError } from "./server.js";

const USAGE = `usage: cronwheel <command> [options]

commands:
  server     run a node (see: cronwheel server --help)
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "server":
      await runServer(rest);
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
  if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`cronwheel: ${(error as Error).message}\n${error instanceof UsageError ? "" : SERVER_USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`cronwheel: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
