/**
 * docker-compose.yml against the code it runs. There is no Docker engine on the development and
 * CI machines, so the file is parsed (yaml) and checked, not started:
 *
 * - every `cronwheel server` command parses with the flags SERVER_USAGE documents (strict, so a
 *   misspelt or removed flag fails), node ids are unique, each node advertises `<service>:<listen
 *   port>`, publishes and health-checks that port, and keeps its data on a volume of its own;
 * - every --etcd endpoint names an etcd service and its client port, and every node knows every
 *   member; the members' --initial-cluster lists exactly the etcd services with their peer URLs;
 * - named volumes are declared, depends_on targets exist (with a healthcheck for
 *   service_healthy), one service installs and the Node services wait for it to complete;
 * - the example worker's script exists, its import resolves, the options it gives `new Worker`
 *   are WorkerOptions members (src/client/worker.ts) and the environment it is given is read.
 *
 * `checkCompose` returns the problems it found; the last block breaks a copy of the file in
 * several ways and expects each break to be reported, so the checks cannot pass vacuously.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { SERVER_USAGE } from "../src/cli/server.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------------------------------------
// The compose file's shape (only what is checked)
// ---------------------------------------------------------------------------------------------

type DependsOn = string[] | Record<string, { condition?: string } | null>;
type VolumeMount = string | { type?: string; source?: string; target?: string };
type PortMapping = string | number | { target?: number | string; published?: number | string };

interface Service {
  image?: string;
  command?: string | string[];
  working_dir?: string;
  volumes?: VolumeMount[];
  depends_on?: DependsOn;
  ports?: PortMapping[];
  healthcheck?: { test?: string | string[] };
  environment?: Record<string, string | number | boolean | null> | string[];
  restart?: string;
  stop_signal?: string;
  stop_grace_period?: string;
}

interface ComposeFile {
  services?: Record<string, Service>;
  volumes?: Record<string, unknown> | null;
}

/** How the checks read the repository (the negative tests swap in altered files). */
interface RepoFiles {
  exists(rel: string): boolean;
  read(rel: string): string;
}

const REPO: RepoFiles = {
  exists: (rel) => fs.existsSync(path.join(ROOT, rel)),
  read: (rel) => fs.readFileSync(path.join(ROOT, rel), "utf8"),
};

function loadCompose(): ComposeFile {
  return parse(REPO.read("docker-compose.yml")) as ComposeFile;
}

// ---------------------------------------------------------------------------------------------
// The server's flags, from its usage text
// ---------------------------------------------------------------------------------------------

/** `--flag` → takes a value (a `--flag VALUE` line) or not (a bare `--flag` line). */
function serverFlags(usage: string): Map<string, "string" | "boolean"> {
  const flags = new Map<string, "string" | "boolean">();
  for (const line of usage.split("\n")) {
    const m = /^\s+--([a-z][a-z0-9-]*)(?: ([A-Z][A-Z0-9_:]*))?(?=\s|$)/.exec(line);
    if (m) flags.set(m[1]!, m[2] ? "string" : "boolean");
  }
  flags.set("help", "boolean");
  return flags;
}

const SERVER_FLAGS = serverFlags(SERVER_USAGE);

/** Parses a `cronwheel server` argument list as the server does (strict: throws on a bad flag). */
function parseServerArgs(args: string[], strict = true): Record<string, string | boolean | undefined> {
  const options = Object.fromEntries([...SERVER_FLAGS].map(([name, type]) => [name, { type }]));
  const { values } = parseArgs({ args, options, strict, allowPositionals: !strict });
  return values as Record<string, string | boolean | undefined>;
}

// ---------------------------------------------------------------------------------------------
// Helpers over a service
// ---------------------------------------------------------------------------------------------

/** The command as words; `sh -c "…"` is split into the words of its script. */
function commandWords(service: Service): string[] {
  const { command } = service;
  if (command === undefined) return [];
  const words = Array.isArray(command) ? command.map(String) : splitWords(command);
  if ((words[0] === "sh" || words[0] === "bash") && words[1] === "-c" && words[2] !== undefined) return splitWords(words[2]);
  return words;
}

function splitWords(script: string): string[] {
  return script
    .trim()
    .split(/\s+/)
    .map((w) => w.replace(/^(['"])(.*)\1$/, "$2"))
    .filter((w) => w.length > 0);
}

/** The argument lists of every `cronwheel server` (or `node bin/cronwheel.js server`) in a command. */
function cronwheelServerArgs(service: Service): string[][] {
  const words = commandWords(service);
  const found: string[][] = [];
  for (let i = 0; i < words.length - 1; i++) {
    if (/(^|\/)cronwheel(\.js)?$/.test(words[i]!) && words[i + 1] === "server") {
      let end = i + 2;
      while (end < words.length && !["&&", "||", ";", "|"].includes(words[end]!)) end++;
      found.push(words.slice(i + 2, end));
    }
  }
  return found;
}

/** etcd-style flags: `--name=value` or `--name value`. */
function dashFlags(words: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < words.length; i++) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(words[i]!);
    if (!m) continue;
    if (m[2] !== undefined) flags.set(m[1]!, m[2]);
    else if (i + 1 < words.length && !words[i + 1]!.startsWith("--")) flags.set(m[1]!, words[++i]!);
    else flags.set(m[1]!, "");
  }
  return flags;
}

function dependsOn(service: Service): Map<string, string> {
  const deps = new Map<string, string>();
  const d = service.depends_on;
  if (Array.isArray(d)) for (const name of d) deps.set(name, "service_started");
  else if (d) for (const [name, v] of Object.entries(d)) deps.set(name, v?.condition ?? "service_started");
  return deps;
}

/** Mounts as { source, target }; a named volume's source has no `.`, `/` or `~` in front. */
function mounts(service: Service): { source: string; target: string; named: boolean }[] {
  return (service.volumes ?? []).map((v) => {
    let source: string;
    let target: string;
    if (typeof v === "string") {
      const parts = v.split(":");
      source = parts.length > 1 ? parts[0]! : "";
      target = parts.length > 1 ? parts[1]! : parts[0]!;
    } else {
      source = v.source ?? "";
      target = v.target ?? "";
    }
    const named = source !== "" && !/^[./~]/.test(source) && (typeof v === "string" || v.type === undefined || v.type === "volume");
    return { source, target, named };
  });
}

/** The named volume that holds `dir` (the mount with the longest matching target). */
function volumeHolding(service: Service, dir: string): string | undefined {
  let best: { source: string; target: string } | undefined;
  for (const m of mounts(service)) {
    if (!m.named) continue;
    const t = m.target.replace(/\/+$/, "");
    if ((dir === t || dir.startsWith(t + "/")) && (!best || t.length > best.target.length)) best = { source: m.source, target: t };
  }
  return best?.source;
}

/** Container ports a service publishes, and the host ports it takes. */
function ports(service: Service): { host: string | undefined; container: number }[] {
  return (service.ports ?? []).map((p) => {
    if (typeof p === "object") return { host: p.published === undefined ? undefined : String(p.published), container: Number(p.target) };
    const parts = String(p).replace(/\/(tcp|udp)$/, "").split(":");
    const container = Number(parts[parts.length - 1]);
    const host = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    return { host, container };
  });
}

function environment(service: Service): Map<string, string> {
  const env = new Map<string, string>();
  const e = service.environment;
  if (Array.isArray(e)) {
    for (const item of e) {
      const i = item.indexOf("=");
      if (i > 0) env.set(item.slice(0, i), item.slice(i + 1));
    }
  } else if (e) for (const [k, v] of Object.entries(e)) env.set(k, v === null ? "" : String(v));
  return env;
}

function healthcheckText(service: Service): string {
  const t = service.healthcheck?.test;
  return Array.isArray(t) ? t.join(" ") : (t ?? "");
}

function hostPort(value: string): [string, number] | undefined {
  const i = value.lastIndexOf(":");
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return [value.slice(0, i), port];
}

function url(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

function urlPort(u: URL): number {
  return Number(u.port || (u.protocol === "https:" ? 443 : 80));
}

// ---------------------------------------------------------------------------------------------
// The SDK side of the example worker
// ---------------------------------------------------------------------------------------------

/** The matching close of the bracket at `open` (strings and comments are not special: light). */
function matchBracket(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === "{" || c === "(" || c === "[") depth++;
    else if (c === "}" || c === ")" || c === "]") {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|\s)\/\/[^\n]*/g, "$1");
}

/** Members of `export interface WorkerOptions { … }`: name → optional. */
function workerOptionMembers(workerTs: string): Map<string, boolean> {
  const start = workerTs.indexOf("export interface WorkerOptions");
  if (start < 0) throw new Error("no `export interface WorkerOptions` in src/client/worker.ts");
  const open = workerTs.indexOf("{", start);
  let body = stripComments(workerTs.slice(open + 1, matchBracket(workerTs, open)));
  for (let prev = ""; prev !== body; ) [prev, body] = [body, body.replace(/\{[^{}]*\}|\([^()]*\)/g, "")];
  const members = new Map<string, boolean>();
  for (const m of body.matchAll(/(?:^|[;\n])\s*([A-Za-z_$][\w$]*)(\?)?\s*:/g)) members.set(m[1]!, m[2] === "?");
  return members;
}

/** The top-level keys of every `new Worker({ … })` object literal in a script. */
function workerCallKeys(script: string): string[][] {
  const text = stripComments(script);
  const calls: string[][] = [];
  for (const m of text.matchAll(/new\s+Worker\s*\(\s*\{/g)) {
    const open = m.index + m[0].length - 1;
    const body = text.slice(open + 1, matchBracket(text, open));
    const entries: string[] = [];
    let depth = 0;
    let current = "";
    for (const c of body) {
      if ("{([".includes(c)) depth++;
      else if ("})]".includes(c)) depth--;
      if (c === "," && depth === 0) {
        entries.push(current);
        current = "";
      } else current += c;
    }
    entries.push(current);
    calls.push(
      entries
        .map((e) => e.trim())
        .filter((e) => e.length > 0)
        .map((e) => (e.startsWith("...") ? "..." : (/^([A-Za-z_$][\w$]*)\s*(?::|\(|$)/.exec(e)?.[1] ?? e))),
    );
  }
  return calls;
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

const CONDITIONS = new Set(["service_started", "service_healthy", "service_completed_successfully"]);

function checkCompose(doc: ComposeFile, repo: RepoFiles = REPO): string[] {
  const problems: string[] = [];
  const services = doc.services ?? {};
  const names = Object.keys(services);
  if (names.length === 0) return ["no services"];
  const declaredVolumes = new Set(Object.keys(doc.volumes ?? {}));

  // --- every service: depends_on, named volumes, host ports -------------------------------
  const usedVolumes = new Set<string>();
  const hostPorts = new Map<string, string>();
  for (const [name, service] of Object.entries(services)) {
    for (const [target, condition] of dependsOn(service)) {
      if (!(target in services)) problems.push(`${name}: depends_on names no service '${target}'`);
      else if (!CONDITIONS.has(condition)) problems.push(`${name}: depends_on ${target}: unknown condition '${condition}'`);
      else if (condition === "service_healthy" && !services[target]!.healthcheck) problems.push(`${name}: depends_on ${target} service_healthy, but ${target} has no healthcheck`);
      else if (condition === "service_completed_successfully" && services[target]!.restart && services[target]!.restart !== "no") {
        problems.push(`${name}: depends_on ${target} completing, but ${target} restarts (${services[target]!.restart})`);
      }
    }
    for (const m of mounts(service)) {
      if (!m.named) continue;
      usedVolumes.add(m.source);
      if (!declaredVolumes.has(m.source)) problems.push(`${name}: volume '${m.source}' is not declared under volumes:`);
    }
    for (const p of ports(service)) {
      if (!Number.isInteger(p.container)) problems.push(`${name}: unreadable port mapping`);
      if (p.host === undefined) continue;
      const other = hostPorts.get(p.host);
      if (other) problems.push(`${name}: host port ${p.host} is also published by ${other}`);
      hostPorts.set(p.host, name);
    }
  }
  for (const v of declaredVolumes) if (!usedVolumes.has(v)) problems.push(`volume '${v}' is declared but no service mounts it`);

  // --- etcd members ---------------------------------------------------------------------
  const etcdNames = names.filter((n) => /(^|\/)etcd:/.test(services[n]!.image ?? ""));
  const etcdFlags = new Map(etcdNames.map((n) => [n, dashFlags(commandWords(services[n]!))]));
  /** service → client port (from --advertise-client-urls) */
  const etcdClientPort = new Map<string, number>();
  const etcdPeerUrl = new Map<string, string>();
  if (etcdNames.length < 3 || etcdNames.length % 2 === 0) problems.push(`etcd: ${etcdNames.length} members; want an odd number, at least 3`);
  for (const name of etcdNames) {
    const f = etcdFlags.get(name)!;
    const service = services[name]!;
    if (f.get("name") !== name) problems.push(`${name}: etcd --name is '${f.get("name")}', not the service name`);
    const client = url(f.get("advertise-client-urls") ?? "");
    if (!client || client.hostname !== name) problems.push(`${name}: --advertise-client-urls must be http://${name}:PORT`);
    else {
      etcdClientPort.set(name, urlPort(client));
      const listens = (f.get("listen-client-urls") ?? "").split(",").map(url);
      if (!listens.some((u) => u && urlPort(u) === urlPort(client))) problems.push(`${name}: listens for clients on no URL with port ${urlPort(client)}`);
    }
    const peer = url(f.get("initial-advertise-peer-urls") ?? "");
    if (!peer || peer.hostname !== name) problems.push(`${name}: --initial-advertise-peer-urls must be http://${name}:PORT`);
    else {
      etcdPeerUrl.set(name, f.get("initial-advertise-peer-urls")!);
      const listens = (f.get("listen-peer-urls") ?? "").split(",").map(url);
      if (!listens.some((u) => u && urlPort(u) === urlPort(peer))) problems.push(`${name}: listens for peers on no URL with port ${urlPort(peer)}`);
    }
    if (f.get("initial-cluster-state") !== "new") problems.push(`${name}: --initial-cluster-state must be new (static bootstrap)`);
    const dataDir = f.get("data-dir");
    if (!dataDir) problems.push(`${name}: no --data-dir`);
    else if (!volumeHolding(service, dataDir)) problems.push(`${name}: --data-dir ${dataDir} is on no named volume`);
    if (!service.healthcheck) problems.push(`${name}: no healthcheck`);
  }
  for (const name of etcdNames) {
    const f = etcdFlags.get(name)!;
    const initial = new Map<string, string>();
    for (const item of (f.get("initial-cluster") ?? "").split(",").filter((s) => s.length > 0)) {
      const i = item.indexOf("=");
      initial.set(item.slice(0, i), item.slice(i + 1));
    }
    const listed = [...initial.keys()].sort();
    if (listed.join(",") !== [...etcdNames].sort().join(",")) problems.push(`${name}: --initial-cluster lists [${listed.join(", ")}], the etcd services are [${etcdNames.join(", ")}]`);
    for (const [member, peerUrl] of initial) {
      if (etcdPeerUrl.has(member) && etcdPeerUrl.get(member) !== peerUrl) problems.push(`${name}: --initial-cluster has ${member}=${peerUrl}, but ${member} advertises ${etcdPeerUrl.get(member)}`);
    }
    if (f.get("initial-cluster-token") !== etcdFlags.get(etcdNames[0]!)!.get("initial-cluster-token")) problems.push(`${name}: --initial-cluster-token differs from ${etcdNames[0]}'s`);
  }

  // --- the installer and the Node services -----------------------------------------------
  const installers = names.filter((n) => {
    const w = commandWords(services[n]!);
    return w.some((word, i) => word === "npm" && (w[i + 1] === "ci" || w[i + 1] === "install"));
  });
  if (installers.length !== 1) problems.push(`want exactly one service that runs npm ci, found [${installers.join(", ")}]`);
  const nodeUsers = names.filter((n) => commandWords(services[n]!)[0] === "node" || cronwheelServerArgs(services[n]!).length > 0);
  for (const name of nodeUsers) {
    if (installers.includes(name)) continue;
    for (const installer of installers) {
      if (dependsOn(services[name]!).get(installer) !== "service_completed_successfully") {
        problems.push(`${name}: runs the checkout's code but does not wait for ${installer} (condition service_completed_successfully)`);
      }
    }
  }

  // --- Cronwheel nodes ------------------------------------------------------------------
  interface NodeInfo {
    id: string;
    listenPort: number;
    etcd: string;
    shards: string;
    rf: string;
    cluster: string;
  }
  const nodes = new Map<string, NodeInfo>();
  const dataVolumes = new Map<string, string>();
  for (const name of names) {
    const service = services[name]!;
    for (const args of cronwheelServerArgs(service)) {
      let v: Record<string, string | boolean | undefined>;
      try {
        v = parseServerArgs(args);
      } catch (error) {
        problems.push(`${name}: cronwheel server ${args.join(" ")}: ${(error as Error).message}`);
        v = parseServerArgs(args, false); // go on with what can be read, so one typo is one problem
      }
      const str = (flag: string): string | undefined => (typeof v[flag] === "string" ? (v[flag] as string) : undefined);
      const id = str("node-id");
      if (!id) problems.push(`${name}: no --node-id`);
      const listen = hostPort(str("listen") ?? "");
      if (!listen) {
        problems.push(`${name}: --listen must be HOST:PORT`);
        continue;
      }
      const [, listenPort] = listen;
      if (str("advertise") !== `${name}:${listenPort}`) problems.push(`${name}: --advertise is '${str("advertise")}', want '${name}:${listenPort}' (service name, listen port)`);
      const published = ports(service);
      if (published.length === 0) problems.push(`${name}: publishes no port`);
      for (const p of published) if (p.container !== listenPort) problems.push(`${name}: publishes container port ${p.container}, but listens on ${listenPort}`);
      const health = healthcheckText(service);
      if (!health.includes("/readyz") || !health.includes(`:${listenPort}/`)) problems.push(`${name}: healthcheck does not ask /readyz on port ${listenPort}`);
      if ((service.stop_signal ?? "SIGTERM") !== "SIGTERM") problems.push(`${name}: stop_signal must be SIGTERM (a clean stop)`);
      if (!service.stop_grace_period) problems.push(`${name}: no stop_grace_period`);
      const dataDir = str("data-dir");
      const volume = dataDir ? volumeHolding(service, dataDir) : undefined;
      if (!volume) problems.push(`${name}: --data-dir ${dataDir ?? "(default)"} is on no named volume`);
      else if (dataVolumes.has(volume)) problems.push(`${name}: data volume '${volume}' is also ${dataVolumes.get(volume)}'s`);
      else dataVolumes.set(volume, name);

      const etcd = str("etcd");
      if (!etcd) problems.push(`${name}: no --etcd (this file is the cluster)`);
      const endpoints = (etcd ?? "").split(",").filter((s) => s.length > 0);
      const named = new Set<string>();
      for (const endpoint of endpoints) {
        const u = url(endpoint);
        if (u) named.add(u.hostname);
        if (!u || u.protocol !== "http:") problems.push(`${name}: --etcd endpoint '${endpoint}' is not an http:// URL`);
        else if (!etcdNames.includes(u.hostname)) problems.push(`${name}: --etcd endpoint '${endpoint}' names no etcd service`);
        else if (etcdClientPort.get(u.hostname) !== urlPort(u)) problems.push(`${name}: --etcd endpoint '${endpoint}': ${u.hostname}'s client port is ${etcdClientPort.get(u.hostname)}`);
      }
      for (const member of etcdNames) if (etcd && !named.has(member)) problems.push(`${name}: --etcd leaves out ${member}`);
      nodes.set(name, { id: id ?? "", listenPort, etcd: [...endpoints].sort().join(","), shards: str("shards") ?? "", rf: str("replication-factor") ?? "", cluster: str("cluster") ?? "" });
    }
  }
  if (nodes.size < 3) problems.push(`${nodes.size} Cronwheel nodes; the cluster wants at least 3`);
  const ids = new Map<string, string>();
  for (const [name, node] of nodes) {
    if (ids.has(node.id)) problems.push(`${name}: node id '${node.id}' is also ${ids.get(node.id)}'s`);
    ids.set(node.id, name);
  }
  const first = [...nodes.values()][0];
  for (const [name, node] of nodes) {
    const flagOf = { etcd: "--etcd", shards: "--shards", rf: "--replication-factor", cluster: "--cluster" } as const;
    for (const key of ["etcd", "shards", "rf", "cluster"] as const) {
      if (node[key] !== first![key]) problems.push(`${name}: ${flagOf[key]} '${node[key]}' differs from the first node's '${first![key]}'`);
    }
    const rf = Number(node.rf || 3);
    if (!Number.isInteger(rf) || rf < 1 || rf > nodes.size) problems.push(`${name}: --replication-factor ${node.rf} for ${nodes.size} nodes`);
    if (node.shards && !(Number.isSafeInteger(Number(node.shards)) && Number(node.shards) >= 1)) problems.push(`${name}: --shards '${node.shards}'`);
  }

  // --- the example worker(s) ------------------------------------------------------------
  const workerMembers = workerOptionMembers(repo.read("src/client/worker.ts"));
  const required = [...workerMembers].filter(([, optional]) => !optional).map(([k]) => k);
  let workers = 0;
  for (const name of nodeUsers) {
    const script = commandWords(services[name]!).find((w, i) => i > 0 && /\.(mjs|js|cjs)$/.test(w) && !/cronwheel\.js$/.test(w));
    if (!script) continue;
    workers++;
    const workingDir = services[name]!.working_dir ?? "/";
    const repoMount = mounts(services[name]!).find((m) => m.source === "." && m.target === workingDir);
    if (!repoMount) problems.push(`${name}: the checkout is not mounted at its working_dir`);
    if (!repo.exists(script)) {
      problems.push(`${name}: runs ${script}, which does not exist`);
      continue;
    }
    const text = repo.read(script);
    for (const m of text.matchAll(/from\s+["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(script), m[1]!));
      const source = target.replace(/^dist\//, "").replace(/\.js$/, ".ts");
      if (!repo.exists(target) && !(target.startsWith("dist/") && repo.exists(source))) problems.push(`${name}: ${script} imports ${m[1]}, which resolves to nothing`);
    }
    const calls = workerCallKeys(text);
    if (calls.length === 0) problems.push(`${name}: ${script} makes no new Worker({ … })`);
    for (const keys of calls) {
      for (const key of keys) if (!workerMembers.has(key)) problems.push(`${name}: ${script} passes '${key}', which is no WorkerOptions member`);
      for (const key of required) if (!keys.includes(key)) problems.push(`${name}: ${script} leaves out the required option '${key}'`);
    }
    for (const [key, value] of environment(services[name]!)) {
      if (!text.includes(`process.env.${key}`)) problems.push(`${name}: sets ${key}, which ${script} never reads`);
      if (!/_URLS?$/.test(key)) continue;
      for (const endpoint of value.split(",").filter((s) => s.length > 0)) {
        const u = url(endpoint);
        const node = u ? nodes.get(u.hostname) : undefined;
        if (!u || !node) problems.push(`${name}: ${key} has '${endpoint}', which names no Cronwheel node`);
        else if (urlPort(u) !== node.listenPort) problems.push(`${name}: ${key} has '${endpoint}', but ${u.hostname} listens on ${node.listenPort}`);
        else if (!dependsOn(services[name]!).has(u.hostname)) problems.push(`${name}: connects to ${u.hostname} but does not depend on it`);
      }
    }
  }
  if (workers === 0) problems.push("no example worker service (a node command running a script)");
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("docker-compose.yml", () => {
  it("reads the server's flags from SERVER_USAGE", () => {
    expect(SERVER_FLAGS.get("etcd")).toBe("string");
    expect(SERVER_FLAGS.get("replication-factor")).toBe("string");
    expect(SERVER_FLAGS.get("listen")).toBe("string");
    expect(SERVER_FLAGS.get("standalone")).toBe("boolean");
    expect(SERVER_FLAGS.get("repair")).toBe("boolean");
    expect(SERVER_FLAGS.size).toBeGreaterThanOrEqual(15);
  });

  it("reads WorkerOptions from src/client/worker.ts", () => {
    const members = workerOptionMembers(REPO.read("src/client/worker.ts"));
    expect(members.get("url")).toBe(false);
    expect(members.get("queues")).toBe(false);
    expect(members.get("handler")).toBe(false);
    expect(members.get("concurrency")).toBe(true);
    // members of nested types are not WorkerOptions members
    expect(members.has("initialMs")).toBe(false);
    expect(members.has("ctx")).toBe(false);
  });

  it("is a three-etcd, three-node cluster with a worker, consistent with the server and the SDK", () => {
    const doc = loadCompose();
    expect(checkCompose(doc)).toEqual([]);
    const services = doc.services!;
    expect(Object.keys(services).filter((n) => cronwheelServerArgs(services[n]!).length > 0)).toHaveLength(3);
    expect(Object.keys(services).filter((n) => /etcd:v3\.4\.23$/.test(services[n]!.image ?? ""))).toHaveLength(3);
    const hostPorts = Object.values(services).flatMap((s) => ports(s).map((p) => p.host));
    expect(hostPorts.sort()).toEqual(["7071", "7072", "7073"]);
  });

  describe("reports a broken copy", () => {
    /** Applies `change` to a fresh copy and returns the problems found. */
    function problemsAfter(change: (services: Record<string, Service>, doc: ComposeFile) => void, repo: RepoFiles = REPO): string[] {
      const doc = loadCompose();
      change(doc.services!, doc);
      return checkCompose(doc, repo);
    }
    const cmd = (s: Service): string[] => s.command as string[];
    const setArg = (s: Service, flag: string, value: string): void => {
      const c = cmd(s);
      c[c.indexOf(flag) + 1] = value;
    };
    const setEtcd = (s: Service, flag: string, value: string): void => {
      const c = cmd(s);
      c[c.findIndex((w) => w.startsWith(`${flag}=`))] = `${flag}=${value}`;
    };

    it("an unknown server flag", () => {
      const p = problemsAfter((s) => (cmd(s["cronwheel-2"]!)[cmd(s["cronwheel-2"]!).indexOf("--replication-factor")] = "--replicas"));
      expect(p.join("\n")).toMatch(/cronwheel-2: cronwheel server .*--replicas/);
    });

    it("a boolean server flag given a value", () => {
      const p = problemsAfter((s) => cmd(s["cronwheel-1"]!).push("--repair", "yes"));
      expect(p.join("\n")).toMatch(/cronwheel-1: cronwheel server/);
    });

    it("two nodes with one id", () => {
      const p = problemsAfter((s) => setArg(s["cronwheel-3"]!, "--node-id", "cronwheel-1"));
      expect(p).toContain("cronwheel-3: node id 'cronwheel-1' is also cronwheel-1's");
    });

    it("an advertise address that is not the service", () => {
      const p = problemsAfter((s) => setArg(s["cronwheel-2"]!, "--advertise", "cronwheel-1:7070"));
      expect(p.join("\n")).toMatch(/cronwheel-2: --advertise is 'cronwheel-1:7070'/);
    });

    it("a listen port that is neither advertised, published nor health-checked", () => {
      const p = problemsAfter((s) => setArg(s["cronwheel-1"]!, "--listen", "0.0.0.0:8080"));
      expect(p.join("\n")).toMatch(/cronwheel-1: --advertise .* want 'cronwheel-1:8080'/);
      expect(p.join("\n")).toMatch(/cronwheel-1: publishes container port 7070, but listens on 8080/);
      expect(p.join("\n")).toMatch(/cronwheel-1: healthcheck does not ask \/readyz on port 8080/);
      expect(p.join("\n")).toMatch(/worker: CRONWHEEL_URLS .* cronwheel-1 listens on 8080/);
    });

    it("an etcd endpoint on the peer port, one on no etcd service, one left out", () => {
      const p = problemsAfter((s) => setArg(s["cronwheel-1"]!, "--etcd", "http://etcd-1:2380,http://etcd-4:2379,http://etcd-2:2379"));
      expect(p).toContain("cronwheel-1: --etcd endpoint 'http://etcd-1:2380': etcd-1's client port is 2379");
      expect(p).toContain("cronwheel-1: --etcd endpoint 'http://etcd-4:2379' names no etcd service");
      expect(p).toContain("cronwheel-1: --etcd leaves out etcd-3");
    });

    it("an --initial-cluster that misses a member or has a wrong peer URL", () => {
      const p = problemsAfter((s) => {
        setEtcd(s["etcd-2"]!, "--initial-cluster", "etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380");
        setEtcd(s["etcd-3"]!, "--initial-cluster", "etcd-1=http://etcd-1:2381,etcd-2=http://etcd-2:2380,etcd-3=http://etcd-3:2380");
      });
      expect(p.join("\n")).toMatch(/etcd-2: --initial-cluster lists \[etcd-1, etcd-2\]/);
      expect(p).toContain("etcd-3: --initial-cluster has etcd-1=http://etcd-1:2381, but etcd-1 advertises http://etcd-1:2380");
    });

    it("an etcd member named unlike its service", () => {
      const p = problemsAfter((s) => setEtcd(s["etcd-3"]!, "--name", "infra3"));
      expect(p.join("\n")).toMatch(/etcd-3: etcd --name is 'infra3'/);
    });

    it("an undeclared volume and a shared data volume", () => {
      const p = problemsAfter((s, doc) => {
        delete (doc.volumes as Record<string, unknown>)["cronwheel-3-data"];
        s["cronwheel-2"]!.volumes = [".:/app", "cronwheel-1-data:/var/lib/cronwheel"];
      });
      expect(p).toContain("cronwheel-3: volume 'cronwheel-3-data' is not declared under volumes:");
      expect(p).toContain("cronwheel-2: data volume 'cronwheel-1-data' is also cronwheel-1's");
      expect(p).toContain("volume 'cronwheel-2-data' is declared but no service mounts it");
    });

    it("a depends_on target that does not exist, and a node that does not wait for the build", () => {
      const p = problemsAfter((s) => {
        const deps = s["cronwheel-1"]!.depends_on as Record<string, { condition?: string }>;
        deps["etcd-9"] = { condition: "service_healthy" };
        delete deps["build"];
      });
      expect(p).toContain("cronwheel-1: depends_on names no service 'etcd-9'");
      expect(p.join("\n")).toMatch(/cronwheel-1: runs the checkout's code but does not wait for build/);
    });

    it("a second npm ci", () => {
      const p = problemsAfter((s) => (s["cronwheel-2"]!.command = ["sh", "-c", `npm ci && ${cmd(s["cronwheel-2"]!).join(" ")}`]));
      expect(p.join("\n")).toMatch(/exactly one service that runs npm ci, found \[build, cronwheel-2\]/);
    });

    it("a worker script that is not there", () => {
      const p = problemsAfter((s) => (s["worker"]!.command = ["node", "docs/examples/no-such-worker.mjs"]));
      expect(p).toContain("worker: runs docs/examples/no-such-worker.mjs, which does not exist");
    });

    it("a worker option the SDK does not have, a required one left out, an env var never read", () => {
      const altered: RepoFiles = {
        exists: REPO.exists,
        read: (rel) =>
          rel === "docs/examples/worker.mjs"
            ? REPO.read(rel).replace(/^(\s+)concurrency,$/m, "$1concurency: concurrency,").replace(/^\s+handler,$/m, "").replace(/process\.env\.CRONWHEEL_QUEUES/g, "process.env.QUEUES")
            : REPO.read(rel),
      };
      const p = problemsAfter(() => {}, altered);
      expect(p).toContain("worker: docs/examples/worker.mjs passes 'concurency', which is no WorkerOptions member");
      expect(p).toContain("worker: docs/examples/worker.mjs leaves out the required option 'handler'");
      expect(p).toContain("worker: sets CRONWHEEL_QUEUES, which docs/examples/worker.mjs never reads");
    });

    it("a worker URL that names no node", () => {
      const p = problemsAfter((s) => ((s["worker"]!.environment as Record<string, string>)["CRONWHEEL_URLS"] = "http://cronwheel-4:7070"));
      expect(p).toContain("worker: CRONWHEEL_URLS has 'http://cronwheel-4:7070', which names no Cronwheel node");
    });
  });
});
