/**
 * The SDK's HTTP/1.1 transport against real node:http(s) servers on loopback: response framings,
 * keep-alive reuse, the socket limit, timeouts, failures before and after connecting, TLS, and
 * idle sockets that must not keep a process alive.
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { HttpTransport, NotSentError } from "../src/client/http-transport.js";

const servers: Array<http.Server | https.Server> = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: http.RequestListener, server: http.Server | https.Server = http.createServer()): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  server.on("connection", () => connections++);
  server.on("secureConnection", () => connections++);
  server.on("request", handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  const scheme = server instanceof https.Server ? "https" : "http";
  return { url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => (server instanceof https.Server ? connections / 2 : connections) };
}

function transport(tlsOptions = {}): HttpTransport {
  const t = new HttpTransport(tlsOptions);
  transports.push(t);
  return t;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => resolve(text));
  });
}

describe("HTTP transport", () => {
  it("reads Content-Length, chunked, close-delimited and empty bodies, and Retry-After", async () => {
    const { url } = await serve(async (req, res) => {
      const body = await readBody(req);
      if (req.url === "/length") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ echo: body, method: req.method, ct: req.headers["content-type"] }));
      if (req.url === "/chunked") {
        res.writeHead(503, { "retry-after": "2" });
        res.write("é".repeat(3));
        setTimeout(() => res.end("-end"), 20);
        return;
      }
      if (req.url === "/close") {
        res.shouldKeepAlive = false;
        res.useChunkedEncodingByDefault = false;
        res.writeHead(200, { connection: "close" });
        res.write("until ");
        setTimeout(() => res.end("closed"), 20);
        return;
      }
      res.writeHead(204).end();
    });
    const t = transport();
    const a = await t.request(`${url}/length`, "POST", { "content-type": "application/json" }, JSON.stringify({ x: "ü" }), 5_000);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text)).toEqual({ echo: '{"x":"ü"}', method: "POST", ct: "application/json" });
    expect(await t.request(`${url}/chunked`, "GET", {}, undefined, 5_000)).toEqual({ status: 503, retryAfter: "2", text: "ééé-end" });
    expect(await t.request(`${url}/close`, "GET", {}, undefined, 5_000)).toEqual({ status: 200, retryAfter: null, text: "until closed" });
    expect(await t.request(`${url}/empty`, "DELETE", {}, undefined, 5_000)).toEqual({ status: 204, retryAfter: null, text: "" });
    expect(await t.request(`${url}/length`, "HEAD", {}, undefined, 5_000)).toMatchObject({ status: 200, text: "" });
  });

  it("reuses kept-alive sockets, holds at most 64 per origin, and serves the requests beyond in order", async () => {
    const held: http.ServerResponse[] = [];
    let holding = false;
    const { url, connections } = await serve((_req, res) => (holding ? held.push(res) : res.end("ok")));
    const t = transport();
    for (let i = 0; i < 3; i++) expect((await t.request(`${url}/`, "GET", {}, undefined, 5_000)).text).toBe("ok");
    expect(connections()).toBe(1);
    holding = true;
    const answers = Promise.all(Array.from({ length: 150 }, () => t.request(`${url}/`, "GET", {}, undefined, 20_000)));
    for (let waited = 0; held.length < 64 && waited < 10_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    expect(held.length).toBe(64); // the other 86 wait in line for a socket
    holding = false;
    for (const res of held.splice(0)) res.end("ok");
    expect((await answers).every((a) => a.status === 200 && a.text === "ok")).toBe(true);
    expect(connections()).toBe(64);
  });

  it("opens a new socket when the server closed an idle one", async () => {
    const { url, connections } = await serve((_req, res) => res.end("ok"));
    const t = transport();
    await t.request(`${url}/`, "GET", {}, undefined, 5_000);
    for (const s of servers) s.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    expect((await t.request(`${url}/`, "GET", {}, undefined, 5_000)).text).toBe("ok");
    expect(connections()).toBe(2);
  });

  it("a refused connection is NotSentError; a timeout after connecting, or a reset, is a plain error (maybe sent)", async () => {
    const t = transport();
    const { url: deadUrl } = await serve(() => undefined);
    const port = Number(new URL(deadUrl).port);
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
    const refused = await t.request(`http://127.0.0.1:${port}/`, "POST", {}, "{}", 2_000).catch((e: Error) => e);
    expect(refused).toBeInstanceOf(NotSentError);

    const { url } = await serve((req, res) => {
      if (req.url === "/reset") return req.socket.destroy();
      void res; // never answers
    });
    const silent = await t.request(`${url}/silent`, "POST", {}, "{}", 200).catch((e: Error) => e);
    expect(silent).toBeInstanceOf(Error);
    expect(silent).not.toBeInstanceOf(NotSentError);
    expect((silent as Error).name).toBe("TimeoutError");
    const reset = await t.request(`${url}/reset`, "POST", {}, "{}", 2_000).catch((e: Error) => e);
    expect(reset).toBeInstanceOf(Error);
    expect(reset).not.toBeInstanceOf(NotSentError);
  });

  it("refuses a response that is not HTTP, and recovers on a new socket", async () => {
    let connection = 0;
    const server = net.createServer((socket) => {
      const first = connection++ === 0;
      socket.once("data", () => socket.end(first ? "SSH-2.0-not-http\r\n\r\n" : "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfine"));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const t = transport();
      const bad = await t.request(`${url}/`, "GET", {}, undefined, 2_000).catch((e: Error) => e);
      expect((bad as Error).message).toMatch(/not an HTTP\/1.x response/);
      expect((await t.request(`${url}/`, "GET", {}, undefined, 2_000)).text).toBe("fine");
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("speaks TLS to an https origin, checking its certificate", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-tls-"));
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
    const { url } = await serve((_req, res) => res.end("secret"), https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }));
    expect(await transport({ ca: fs.readFileSync(cert) }).request(`${url}/`, "GET", {}, undefined, 5_000)).toMatchObject({ status: 200, text: "secret" });
    const untrusted = await transport().request(`${url}/`, "GET", {}, undefined, 5_000).catch((e: Error) => e);
    expect(untrusted).toBeInstanceOf(Error);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("does not keep a process alive with its idle sockets", async () => {
    const { url } = await serve((_req, res) => res.end("ok"));
    const module = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "src", "client", "http-transport.js"); // built by npm test
    // The child prints how long after its answer its event loop ran dry: at once, not when the
    // 4 s idle close would have let a referenced socket go.
    const script = `import { HttpTransport } from ${JSON.stringify(module)}; const r = await new HttpTransport().request(${JSON.stringify(`${url}/`)}, "GET", {}, undefined, 5000); const t = Date.now(); process.on("exit", () => console.log(r.text, Date.now() - t));`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    const [text, msAfterAnswer] = out.trim().split(" ");
    expect({ code, text }).toEqual({ code: 0, text: "ok" });
    expect(Number(msAfterAnswer)).toBeLessThan(2_000);
  });
});
