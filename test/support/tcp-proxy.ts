/**
 * A TCP proxy the test controls, to cut one process off from another (a node from etcd) without
 * touching the rest: `cut()` drops every open connection and black-holes new ones (accepted and
 * never answered, as a partition looks to the client); `heal()` lets traffic through again.
 */
import net from "node:net";

export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  /** Connections accepted while cut off: held open, never answered. */
  private readonly blackHoled = new Set<net.Socket>();
  private cutOff = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = net.createServer((client) => {
      const p = proxy!;
      p.sockets.add(client);
      client.on("close", () => p.sockets.delete(client));
      client.on("error", () => client.destroy());
      if (p.cutOff) {
        p.blackHoled.add(client); // black hole: hold it open, say nothing
        client.on("close", () => p.blackHoled.delete(client));
        return;
      }
      const upstream = net.connect(targetPort, targetHost);
      p.sockets.add(upstream);
      upstream.on("close", () => {
        p.sockets.delete(upstream);
        client.destroy();
      });
      upstream.on("error", () => upstream.destroy());
      client.on("close", () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Traffic flows again for new connections; those accepted into the black hole are reset (as a
   *  healed network does not revive them: their clients reconnect). */
  heal(): void {
    this.cutOff = false;
    for (const s of this.blackHoled) s.destroy();
    this.blackHoled.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
