/**
 * A server and its clients in one process, without root: each role runs on a channel TUN, a socket of one
 * in-memory network, a recording host network and a fake clock. The timers run only when a test calls
 * `tick()`, so time moves only when the test says so.
 */
import { Cleanup } from "../../src/host/cleanup.ts";
import type { AeadBackend } from "../../src/protocol/aead.ts";
import { Client } from "../../src/roles/client.ts";
import { Server } from "../../src/roles/server.ts";
import type { RolePieces } from "../../src/roles/role.ts";
import type { ClientOptions, ServerOptions } from "../../src/config/config.ts";
import { deriveHandshakeKey } from "../../src/protocol/keys.ts";
import { requireCidr } from "../../src/net/cidr.ts";
import { ServerList } from "../../src/roles/server_list.ts";
import { ClientHostChanges } from "../../src/host/client_host_changes.ts";
import { DEFAULT_PREFIX4, DEFAULT_PREFIX6 } from "../../src/protocol/assigned_limits.ts";
import { generateKey } from "../../src/config/key_file.ts";
import { DEFAULT_KEEPALIVE_SECONDS, DEFAULT_MTU } from "../../src/protocol/constants.ts";
import { setLogLevel } from "../../src/ops/log.ts";
import { HandshakeStats } from "../../src/ops/handshake_stats.ts";
import { selectAeadBackend } from "../../src/dataplane/aead_select.ts";
import { ChannelTun } from "./channel_tun.ts";
import { MemoryNetwork, type MemorySocket } from "./memory_network.ts";
import { RecordingNetwork } from "./recording_network.ts";

/** A monotonic clock that moves only when told. */
export class FakeClock {
  t = 1_000_000;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** One running role and its fakes. */
export interface Node<R> {
  readonly role: R;
  readonly tun: ChannelTun;
  readonly udp: MemorySocket;
  readonly network: RecordingNetwork;
  readonly cleanup: Cleanup;
  readonly handshakes: HandshakeStats;
  readonly running: Promise<void>;
}

/** Where the server listens on the in-memory network. */
export const SERVER_HOST = "192.0.2.1";
export const SERVER_PORT = 51820;

/** A server (10.0.0.1/24) and its clients on one in-memory network. */
export class Inproc {
  readonly net = new MemoryNetwork();
  readonly clock = new FakeClock();
  readonly key = generateKey();
  readonly #nodes: Node<Server | Client>[] = [];
  #aead: AeadBackend | null = null;
  /** Every node's TUN has the offload capability (virtio_net_hdr on reads and writes). */
  #vnetHdr = false;
  server!: Node<Server>;

  /** Starts the server with the AEAD backend `crypto` picks; `clientToClient` as in the config; `vnetHdr` gives every TUN offloads. */
  static async start(
    crypto: "auto" | "webcrypto" = "auto",
    clientToClient = true,
    vnetHdr = false,
  ): Promise<Inproc> {
    setLogLevel("error");
    const n = new Inproc();
    n.#vnetHdr = vnetHdr;
    n.#aead = (await selectAeadBackend(crypto)).backend;
    const o: ServerOptions = {
      listen: { hostname: SERVER_HOST, port: SERVER_PORT },
      tun: "vpns",
      address: requireCidr("10.0.0.1/24"),
      mtu: DEFAULT_MTU,
      key: { kind: "inline", key: n.key, source: "test" },
      sharedKey: true,
      forward: false,
      keepalive: DEFAULT_KEEPALIVE_SECONDS,
      logLevel: "error",
      logFormat: "text",
      crypto,
      udp: "deno",
      offload: "off",
      peers: [],
      clientToClient,
      postUp: [],
      preDown: [],
      dns: [],
      dnsSearch: [],
    };
    const shared = await deriveHandshakeKey(n.key);
    n.server = n.#run(o.tun, SERVER_HOST, SERVER_PORT, (p) => new Server(o, p, shared, []));
    n.server.role.configure();
    n.server.role.started();
    return n;
  }

  /**
   * Starts a client at `host:port` with `key` (default: the server's) and sends its first initiation. It asks
   * for no routes, kill switch or DNS, so its `ClientHostChanges` changes nothing on the host. `settings`
   * override the client's own options (e.g. `routes`, `defaultRoute`) but not its host changes.
   */
  async client(
    host: string,
    port = 40000,
    key: Uint8Array = this.key,
    settings: Partial<ClientOptions> = {},
  ): Promise<Node<Client>> {
    const peer = { hostname: SERVER_HOST, port: SERVER_PORT };
    const o: ClientOptions = {
      peer,
      servers: [peer],
      dns: false,
      killSwitch: false,
      acceptPrefix4: DEFAULT_PREFIX4,
      acceptPrefix6: DEFAULT_PREFIX6,
      acceptNetwork: [],
      tun: `vpnc${this.#nodes.length}`,
      key: { kind: "inline", key, source: "test" },
      routes: [],
      defaultRoute: false,
      forward: false,
      postUp: [],
      preDown: [],
      logLevel: "error",
      logFormat: "text",
      crypto: "auto",
      udp: "deno",
      offload: "off",
    };
    const hk = await deriveHandshakeKey(key);
    const servers = await ServerList.create(o.servers);
    const node = this.#run(
      o.tun,
      host,
      port,
      (p) =>
        new Client({ ...o, ...settings }, p, hk, servers, new ClientHostChanges(o, p.cleanup, p.tun.name)),
    );
    node.role.configure();
    node.role.started();
    return node;
  }

  /** Starts a client and waits until its handshake completed (it has an address and the server saw a packet). */
  async connectedClient(
    host: string,
    port = 40000,
    settings: Partial<ClientOptions> = {},
  ): Promise<Node<Client>> {
    const c = await this.client(host, port, this.key, settings);
    await waitFor(() => c.role.status().address !== null, `${host} has an address`);
    await waitFor(
      () => this.server.role.status().peers.some((p) => p.endpoint === `${host}:${port}` && p.rx_packets > 0),
      `server confirmed ${host}`,
    );
    return c;
  }

  #run<R extends Server | Client>(
    tunName: string,
    host: string,
    port: number,
    make: (p: RolePieces) => R,
  ): Node<R> {
    const tun = new ChannelTun(tunName, { vnetHdr: this.#vnetHdr });
    const udp = this.net.bind(host, port);
    const cleanup = new Cleanup();
    cleanup.add("close TUN", () => tun.close());
    cleanup.add("close UDP", () => udp.close());
    const network = new RecordingNetwork();
    const pieces: RolePieces = {
      tun,
      udp,
      aead: this.#aead!,
      cleanup,
      network,
      handshakes: new HandshakeStats(),
      now: this.clock.now,
      startedAt: this.clock.now(),
    };
    const role = make(pieces);
    const node = { role, tun, udp, network, cleanup, handshakes: pieces.handshakes, running: role.run() };
    this.#nodes.push(node);
    return node;
  }

  /** Runs every role's timers once (at the fake clock's time). */
  tick(): void {
    for (const n of this.#nodes) n.role.tick();
  }

  /** Stops every role, closes the fakes and waits for the loops to end. */
  async stop(): Promise<void> {
    for (const n of this.#nodes) n.role.stop();
    const failed: string[] = [];
    for (const n of this.#nodes) for (const f of await n.cleanup.runAll()) failed.push(f.description);
    await Promise.all(this.#nodes.map((n) => n.running));
    // Let handshakes still in flight (async crypto) settle before the test's sanitizers look.
    await new Promise((r) => setTimeout(r, 20));
    if (failed.length > 0) throw new Error(`cleanup steps failed: ${failed.join(", ")}`);
  }
}

/** Polls `cond` every few ms; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lets every pending delivery and crypto step run (a few event-loop turns). */
export async function settle(ms = 30): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}
