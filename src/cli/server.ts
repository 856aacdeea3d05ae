/**
 * `cronwheel server`: start one node. Without `--etcd` it runs standalone (the embedded default):
 * every shard local, no etcd, data under ./data, HTTP on 127.0.0.1:7070.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { Auth } from "../api/auth.js";
import { HttpServer } from "../api/http-server.js";
import { startupBanner } from "./banner.js";
import { DEFAULT_LIMITS } from "../api/validation.js";
import type { FsyncMode } from "../../wal/index.js";
import { SystemClock } from "../node/clock.js";
import { CronwheelNode, SNAPSHOT_EVERY_RECORDS_DEFAULT } from "../node/node.js";
import { WorkerGateway } from "../gateway/gateway.js";
import { SHARD_SEGMENT_BYTES_DEFAULT } from "../node/shard-replica.js";
import { DEFAULT_SHARD_LIMITS } from "../core/shard-state.js";
import { parseDuration } from "../core/trigger.js";
import type { HistoryOptions } from "../history/history-store.js";

const DAY_MS = 86_400_000;

const FSYNC_MODES: readonly FsyncMode[] = ["always", "batch", "off"];

export const SERVER_USAGE = `usage: cronwheel server [--standalone] [options]

  --standalone            one node owns every shard, no etcd (the default without --etcd)
  --etcd URLS             join a cluster: comma-separated etcd endpoints (http://host:2379,...)
  --cluster NAME          etcd key prefix of the cluster (default cronwheel)
  --replication-factor N  replicas per shard in a new cluster (default 3)
  --peer-address ID=HOST:PORT
                          dial node ID there instead of at its advertised address (repeatable;
                          for a proxy between nodes, e.g. the jepsen-style tests' partitions)
  --data-dir DIR          where shard logs and snapshots live (default ./data)
  --listen HOST:PORT      HTTP and worker endpoint (default 127.0.0.1:7070)
  --advertise HOST:PORT   address other nodes and clients use (default: the listen address)
  --node-id ID            this node's name (default node-1)
  --shards N              shards in a new data directory (default 8; fixed afterwards)
  --fsync MODE            always | batch | off (default batch: one fsync per group commit)
  --tokens FILE           bearer tokens (JSON); without it auth is off and the tenant is 'default'
  --payload-bytes-max N   largest payload (default 262144)
  --snapshot-every N      records between snapshots of a shard (default ${SNAPSHOT_EVERY_RECORDS_DEFAULT})
  --segment-bytes N       shard log segment size (default 16 MiB); only whole segments a snapshot covers are dropped
  --history on|off        keep every finished execution on disk, queryable (default on; docs/history.md)
  --history-dir DIR       where the history files live (default DATA-DIR/history)
  --history-retention D   how long history is kept, e.g. 400d, 90d, 12h (default 400d); whole days are dropped
  --history-export-dir DIR
                          also write each closed day of history as Parquet here, per shard and day
                          (default: off; needs --history on)
  --finished-in-memory N  finished executions a shard also keeps in memory, newest first (default ${DEFAULT_SHARD_LIMITS.finishedPerShardMax})
  --idempotency-window D  how long an idempotency key answers for its first request (default 24h)
  --repair                standalone: cut a log at a corrupt record instead of refusing to start
                          (a cluster node repairs a corrupt shard log from its peers without it)
  --log-level LEVEL       pino level (default info)
`;

export async function runServer(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      standalone: { type: "boolean", default: false },
      etcd: { type: "string" },
      cluster: { type: "string", default: "cronwheel" },
      "replication-factor": { type: "string", default: "3" },
      "peer-address": { type: "string", multiple: true },
      "data-dir": { type: "string", default: "./data" },
      listen: { type: "string", default: "127.0.0.1:7070" },
      advertise: { type: "string" },
      "node-id": { type: "string", default: "node-1" },
      shards: { type: "string", default: "8" },
      fsync: { type: "string", default: "batch" },
      tokens: { type: "string" },
      "payload-bytes-max": { type: "string", default: String(DEFAULT_LIMITS.payloadBytesMax) },
      "snapshot-every": { type: "string", default: String(SNAPSHOT_EVERY_RECORDS_DEFAULT) },
      "segment-bytes": { type: "string", default: String(SHARD_SEGMENT_BYTES_DEFAULT) },
      repair: { type: "boolean", default: false },
      history: { type: "string", default: "on" },
      "history-dir": { type: "string" },
      "history-retention": { type: "string", default: "400d" },
      "history-export-dir": { type: "string" },
      "finished-in-memory": { type: "string", default: String(DEFAULT_SHARD_LIMITS.finishedPerShardMax) },
      "idempotency-window": { type: "string", default: "24h" },
      "log-level": { type: "string", default: process.env.CRONWHEEL_LOG_LEVEL ?? "info" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(SERVER_USAGE);
    return;
  }
  const [host, port] = parseHostPort(values.listen!, "--listen");
  const fsync = values.fsync as FsyncMode;
  if (!FSYNC_MODES.includes(fsync)) throw new UsageError(`--fsync must be one of ${FSYNC_MODES.join(", ")}`);
  const shardCount = positiveInt(values.shards!, "--shards");
  const logger = pino({ level: values["log-level"]!, base: { node: values["node-id"] } });
  const clock = new SystemClock(Number(process.env.CRONWHEEL_CLOCK_OFFSET_MS ?? 0));
  if (process.env.CRONWHEEL_CLOCK_OFFSET_FILE) clock.followOffsetFile(process.env.CRONWHEEL_CLOCK_OFFSET_FILE);
  const peerAddresses = parsePeerAddresses(values["peer-address"] ?? []);
  const dataDir = path.resolve(values["data-dir"]!);
  const auth = values.tokens ? Auth.fromFile(values.tokens) : Auth.open();
  const etcd = values.etcd && !values.standalone ? values.etcd.split(",").map((u) => u.trim()).filter((u) => u !== "") : null;
  if (etcd && port === 0 && !values.advertise) throw new UsageError("--etcd needs a fixed --listen port (or --advertise): peers must know where to reach this node");
  const history = parseHistoryFlags(values.history!, values["history-dir"], values["history-retention"]!, values["history-export-dir"], dataDir);
  const advertise = values.advertise ?? `${host}:${port}`;
  parseHostPort(advertise, "--advertise");

  const node = await CronwheelNode.start({
    nodeId: values["node-id"]!,
    address: advertise,
    ...(etcd
      ? {
          cluster: {
            etcd,
            name: values.cluster!,
            replicationFactor: positiveInt(values["replication-factor"]!, "--replication-factor"),
            peerToken: auth.peerToken(),
            peerAddresses,
            authorizePeer: (h: string) => auth.authorizesPeer(h),
          },
        }
      : {}),
    dataDir,
    shardCount,
    fsync,
    clock,
    logger,
    limits: {
      ...DEFAULT_SHARD_LIMITS,
      finishedPerShardMax: positiveInt(values["finished-in-memory"]!, "--finished-in-memory"),
      idempotencyWindowMs: duration(values["idempotency-window"]!, "--idempotency-window", 1_000),
      // Test-only (jepsen-style suite self-test): a node that breaks fencing on purpose.
      ...(process.env.CRONWHEEL_UNSAFE_ACCEPT_STALE_FENCES === "1" ? { unsafeAcceptStaleFences: true } : {}),
    },
    snapshotEveryRecords: positiveInt(values["snapshot-every"]!, "--snapshot-every"),
    segmentBytesMax: positiveInt(values["segment-bytes"]!, "--segment-bytes"),
    repair: values.repair!,
    history,
  });
  const gateway = new WorkerGateway(node, auth, logger);
  const server = await HttpServer.listen({
    host,
    port,
    node,
    auth,
    configure: (app) => {
      gateway.attach(app);
      node.peers?.attach(app);
    },
    limits: { payloadBytesMax: positiveInt(values["payload-bytes-max"]!, "--payload-bytes-max") },
    bodyBytesMax: 64 * 1024 * 1024,
    logger,
    advertise,
  });
  node.startCoordination();
  const base = `http://${host}:${server.port}`;
  logger.info({ listen: `${host}:${server.port}`, dataDir, shards: shardCount, fsync }, "cronwheel node ready");
  process.stdout.write(
    startupBanner({
      base,
      mode: etcd ? `cluster '${values.cluster}' as ${values["node-id"]}` : "standalone",
      shards: node.coordinator.shards.length,
      dataDir,
      authEnabled: auth.enabled,
    }),
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    gateway.drainAll();
    server.close();
    gateway.close();
    node.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

export class UsageError extends Error {}

function parsePeerAddresses(values: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new UsageError(`--peer-address: expected ID=HOST:PORT, got '${v}'`);
    const address = v.slice(eq + 1);
    parseHostPort(address, "--peer-address");
    map.set(v.slice(0, eq), address);
  }
  return map;
}

export function parseHostPort(value: string, flag: string): [string, number] {
  const i = value.lastIndexOf(":");
  const host = value.slice(0, i);
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${flag}: expected HOST:PORT, got '${value}'`);
  return [host, port];
}

function parseHistoryFlags(onOff: string, dir: string | undefined, retention: string, exportDir: string | undefined, dataDir: string): HistoryOptions | null {
  if (onOff !== "on" && onOff !== "off") throw new UsageError(`--history must be on or off, got '${onOff}'`);
  const retentionMs = duration(retention, "--history-retention", DAY_MS);
  if (onOff === "off") {
    if (exportDir !== undefined) throw new UsageError("--history-export-dir needs --history on: the export reads the history files");
    return null;
  }
  return { dir: path.resolve(dir ?? path.join(dataDir, "history")), retentionMs, exportDir: exportDir === undefined ? null : path.resolve(exportDir) };
}

/** A duration flag (`400d`, `36h`, `90s`, …) of at least `minMs`. */
function duration(value: string, flag: string, minMs: number): number {
  const ms = parseDuration(value);
  if (ms === null || ms < minMs) throw new UsageError(`${flag}: expected a duration of at least ${minMs >= DAY_MS ? `${minMs / DAY_MS}d` : `${minMs / 1000}s`} (e.g. 400d, 24h, 90s), got '${value}'`);
  return ms;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag}: expected a positive integer, got '${value}'`);
  return n;
}
