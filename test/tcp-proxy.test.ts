/**
 * The test proxy's fault modes, each against a real echo server on loopback: what each end sees
 * (bytes, FIN, RST) while the fault holds and after heal(). The fault tests of the cluster and
 * the jepsen-style nemesis build on exactly these behaviours.
 */
import net from "node:net";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { TcpProxy } from "./support/tcp-proxy.js";

/** An echo server that remembers, per accepted connection, what it received and how it ended. */
class EchoServer {
  readonly conns: Array<{ socket: net.Socket; received: number; ended: "open" | "fin" | "reset" | "closed" }> = [];
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<EchoServer> {
    let echo: EchoServer | null = null;
    const server = net.createServer((socket) => {
      const c = { socket, received: 0, ended: "open" as EchoServer["conns"][number]["ended"] };
      echo!.conns.push(c);
      socket.on("data", (d: Buffer) => {
        c.received += d.length;
        socket.write(d);
      });
      socket.on("end", () => (c.ended = "fin"));
      socket.on("error", (e: NodeJS.ErrnoException) => (c.ended = e.code === "ECONNRESET" ? "reset" : "closed"));
      socket.on("close", () => c.ended === "open" && (c.ended = "closed"));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    echo = new EchoServer(server, (server.address() as net.AddressInfo).port);
    return echo;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A client socket that collects what it gets back and how it ended. */
async function client(port: number): Promise<{ socket: net.Socket; got: () => number; ended: () => string }> {
  const socket = net.connect(port, "127.0.0.1");
  let got = 0;
  let ended = "open";
  socket.on("data", (d: Buffer) => (got += d.length));
  socket.on("end", () => (ended = "fin"));
  socket.on("error", (e: NodeJS.ErrnoException) => (ended = e.code === "ECONNRESET" ? "reset" : `error ${e.code}`));
  socket.on("close", () => ended === "open" && (ended = "closed"));
  await new Promise<void>((r) => socket.once("connect", () => r()));
  return { socket, got: () => got, ended: () => ended };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}

let echo: EchoServer;
let proxy: TcpProxy;

beforeEach(async () => {
  echo = await EchoServer.start();
  proxy = await TcpProxy.start("127.0.0.1", echo.port);
});

afterEach(async () => {
  await proxy.close();
  await echo.close();
});

/** A connection through the proxy that has echoed once (so both sockets are up). */
async function established() {
  const c = await client(proxy.port);
  c.socket.write("hello");
  await until("the first echo", () => c.got() === 5);
  return { c, server: echo.conns[0]! };
}

describe("TcpProxy", () => {
  test("forwards both ways when healthy", async () => {
    const { c, server } = await established();
    expect(server.received).toBe(5);
    expect(c.ended()).toBe("open");
  });

  test("blackhole to-server: the server gets nothing, both sockets stay open; at heal a connection with a gap is reset, one without flows on", async () => {
    const { c, server } = await established();
    const quiet = await client(proxy.port); // sends nothing while the fault holds
    proxy.blackhole("to-server");
    c.socket.write("lost");
    await sleep(300);
    expect(server.received).toBe(5);
    expect(c.got()).toBe(5);
    expect([c.ended(), server.ended]).toEqual(["open", "open"]);
    proxy.heal();
    await until("the connection that lost bytes is reset at both ends", () => c.ended() === "reset" && server.ended === "reset");
    quiet.socket.write("after");
    await until("the connection that lost nothing echoes", () => quiet.got() === 5);
    quiet.socket.destroy();
  });

  test("blackhole to-client: the server receives and answers, the client hears nothing, both stay open", async () => {
    const { c, server } = await established();
    proxy.blackhole("to-client");
    c.socket.write("one way");
    await until("the server got it", () => server.received === 12);
    await sleep(300);
    expect(c.got()).toBe(5);
    expect([c.ended(), server.ended]).toEqual(["open", "open"]);
    // New connections are blackholed the same way.
    const d = await client(proxy.port);
    d.socket.write("x");
    await until("the server got the new connection's byte", () => echo.conns[1]?.received === 1);
    await sleep(200);
    expect(d.got()).toBe(0);
    d.socket.destroy();
  });

  test("half-open: nothing moves either way, a close at one end is not passed on, heal resets what is left", async () => {
    const { c, server } = await established();
    proxy.halfOpen();
    c.socket.write("into the void");
    server.socket.write("and back");
    await sleep(300);
    expect([server.received, c.got()]).toEqual([5, 5]);
    c.socket.end(); // a FIN from the client: the server must not see it
    await sleep(300);
    expect(server.ended).toBe("open");
    // A new connection is accepted but never reaches the server.
    const d = await client(proxy.port);
    d.socket.write("x");
    await sleep(200);
    expect(echo.conns).toHaveLength(1);
    proxy.heal();
    await until("the server's socket is reset", () => server.ended === "reset");
    await until("the held connection is reset", () => d.ended() === "reset");
  });

  test("reset: both ends get an RST (ECONNRESET), not a FIN; new connections work", async () => {
    const { c, server } = await established();
    proxy.reset();
    await until("both ends reset", () => c.ended() === "reset" && server.ended === "reset");
    const d = await client(proxy.port);
    d.socket.write("again");
    await until("a new connection echoes", () => d.got() === 5);
    d.socket.destroy();
  });

  test("delay: every chunk arrives that much later, each way", async () => {
    const { c } = await established();
    proxy.delay(150);
    const sentAt = Date.now();
    c.socket.write("slow");
    await until("the delayed echo", () => c.got() === 9);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(290); // 150 ms there, 150 ms back
    proxy.heal();
    const again = Date.now();
    c.socket.write("fast");
    await until("the echo after heal", () => c.got() === 13);
    expect(Date.now() - again).toBeLessThan(150);
  });

  test("rate limit: bytes move at the limit; after heal at full speed", async () => {
    const { c, server } = await established();
    proxy.rateLimit(100_000);
    c.socket.write(Buffer.alloc(1_000_000));
    await sleep(500);
    // ~50 KB in 0.5 s (one slice of burst allowed); unlimited, loopback moves 1 MB in a few ms.
    expect(server.received - 5).toBeGreaterThan(20_000);
    expect(server.received - 5).toBeLessThan(80_000);
    proxy.heal();
    await until("the rest arrives at full speed", () => server.received === 1_000_005, 5000);
    await until("and comes back", () => c.got() === 1_000_005, 5000);
  });
});
