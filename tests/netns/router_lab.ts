/**
 * A bad or hostile path: client -- router -- server, three namespaces and two veth links, the router
 * forwarding between two test-only subnets that exist only inside these namespaces (10.204.1.0/24 on the
 * client side, 10.204.2.0/24 on the server side). The client's and the server's default routes go via the
 * router. The router's controls (loss, duplicates, rewrites, black holes, a size limit) are nft rules in
 * one table of the router namespace, replaced atomically on every change, so a test changes the path while
 * traffic runs. The kernels here have no netem.
 *
 * ```ts
 * await using path = await RouterLab.create();
 * await using vpn = await VpnLab.create(path.net);
 * const srv = await vpn.server("server");
 * await path.loss(30, "both");
 * const cli = await vpn.client("client", srv);
 * ```
 */
import {
  type Capture,
  createWiredNetwork,
  type Host,
  HOST_IFACE,
  NetnsError,
  type Network,
} from "./hosts.ts";

/** The client side subnet (test-only). */
export const CLIENT_SUBNET = "10.204.1.0/24";
/** The server side subnet (test-only). */
export const SERVER_SUBNET = "10.204.2.0/24";
/** The client's underlay address. */
export const CLIENT_ADDRESS = "10.204.1.2";
/** The server's underlay address. */
export const SERVER_ADDRESS = "10.204.2.2";
/** The router's address on the client side (the client's gateway). */
export const ROUTER_CLIENT_ADDRESS = "10.204.1.1";
/** The router's address on the server side (the server's gateway). */
export const ROUTER_SERVER_ADDRESS = "10.204.2.1";
/** The router's interface towards the client ({@link HOST_IFACE}, so `router.iface` is the client side). */
export const ROUTER_CLIENT_IFACE = HOST_IFACE;
/** The router's interface towards the server. */
export const ROUTER_SERVER_IFACE = "eth1";

/** Which way through the router: "up" is client to server, "down" server to client. */
export type Direction = "up" | "down" | "both";

/** A UDP source to rewrite: an address and port as they arrive at the router. */
export interface UdpSource {
  address: string;
  port: number;
}

const TABLE = "badpath";
const SETUP_TIMEOUT_MS = 10_000;

interface Rewrite {
  match: UdpSource;
  to: UdpSource;
}

/** Runs `args` in the test's namespace, feeding `stdin`; throws {@link NetnsError} unless it exits 0. */
async function mustRun(args: string[], stdin = ""): Promise<string> {
  const child = new Deno.Command(args[0], {
    args: args.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, SETUP_TIMEOUT_MS);
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin)).catch(() => {});
  await w.close().catch(() => {});
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new NetnsError(
      `${args.join(" ")} failed (code ${out.code}): ${dec.decode(out.stderr).trim()}` +
        (stdin ? `\n--- input ---\n${stdin}` : ""),
    );
  }
  return dec.decode(out.stdout);
}

function sides(direction: Direction): string[] {
  const up = `iifname "${ROUTER_CLIENT_IFACE}"`;
  const down = `iifname "${ROUTER_SERVER_IFACE}"`;
  return direction === "up" ? [up] : direction === "down" ? [down] : [up, down];
}

/** The interface a datagram from `address` arrives on at the router, and the other one. */
function arrivesOn(address: string): [string, string] {
  return address.startsWith("10.204.1.")
    ? [ROUTER_CLIENT_IFACE, ROUTER_SERVER_IFACE]
    : [ROUTER_SERVER_IFACE, ROUTER_CLIENT_IFACE];
}

/** The match for "`pct` % of packets" (nft takes 0..99 after `<`, so 100 % is no match at all). */
function chance(pct: number): string {
  return pct >= 100 ? "" : `numgen random mod 100 < ${pct} `;
}

function percent(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 0 || p > 100) throw new RangeError(`${what}: want 0..100, got ${p}`);
  return p;
}

/** The three hosts and the router's controls; dispose it to remove every namespace and process. */
export class RouterLab {
  /** The network (pass it to `VpnLab.create`); hosts "client", "router", "server". */
  readonly net: Network;
  readonly client: Host;
  readonly router: Host;
  readonly server: Host;
  #loss = { up: 0, down: 0 };
  #dup = { up: 0, down: 0 };
  #blackhole = { up: false, down: false };
  #dropAbove = 0;
  #rewrites: Rewrite[] = [];

  private constructor(net: Network) {
    this.net = net;
    this.client = net.host("client");
    this.router = net.host("router");
    this.server = net.host("server");
  }

  /** Builds the three namespaces, links, addresses and routes, and an empty rule table on the router. */
  static async create(): Promise<RouterLab> {
    const net = await createWiredNetwork([
      { name: "client", address: CLIENT_ADDRESS },
      { name: "router", address: ROUTER_CLIENT_ADDRESS },
      { name: "server", address: SERVER_ADDRESS },
    ], async (net) => {
      const [c, r, s] = ["client", "router", "server"].map((n) => net.host(n));
      await mustRun([
        "ip",
        "-n",
        c.ns,
        "link",
        "add",
        HOST_IFACE,
        "type",
        "veth",
        "peer",
        "name",
        ROUTER_CLIENT_IFACE,
        "netns",
        r.ns,
      ]);
      await mustRun([
        "ip",
        "-n",
        s.ns,
        "link",
        "add",
        HOST_IFACE,
        "type",
        "veth",
        "peer",
        "name",
        ROUTER_SERVER_IFACE,
        "netns",
        r.ns,
      ]);
      // No reverse-path filter on the router: a rewritten source (the attacker's address) must pass.
      const sysctl = "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 " +
        `net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.${ROUTER_CLIENT_IFACE}.rp_filter=0 ` +
        `net.ipv4.conf.${ROUTER_SERVER_IFACE}.rp_filter=0`;
      await mustRun(["ip", "netns", "exec", r.ns, "sh", "-c", sysctl]);
      await mustRun(
        ["ip", "-n", r.ns, "-batch", "-"],
        [
          `addr add ${ROUTER_CLIENT_ADDRESS}/24 dev ${ROUTER_CLIENT_IFACE}`,
          `addr add ${ROUTER_SERVER_ADDRESS}/24 dev ${ROUTER_SERVER_IFACE}`,
          `link set ${ROUTER_CLIENT_IFACE} up`,
          `link set ${ROUTER_SERVER_IFACE} up`,
        ].join("\n") + "\n",
      );
      for (const [h, gw] of [[c, ROUTER_CLIENT_ADDRESS], [s, ROUTER_SERVER_ADDRESS]] as const) {
        await mustRun(
          ["ip", "-n", h.ns, "-batch", "-"],
          [
            // One datagram per packet on the wire, as a real NIC sends them: a veth would otherwise carry
            // a UDP GSO batch (up to 64 KiB) as one packet, and the router would lose or size it whole.
            `link set ${HOST_IFACE} gso_max_segs 1`,
            `addr add ${h.address}/24 dev ${HOST_IFACE}`,
            `link set ${HOST_IFACE} up`,
            `route add default via ${gw}`,
          ].join("\n") + "\n",
        );
      }
    });
    const lab = new RouterLab(net);
    try {
      await lab.#apply();
    } catch (e) {
      await net.destroy();
      throw e;
    }
    return lab;
  }

  /** Drop `pct` % of the datagrams going `direction`, at random. */
  loss(pct: number, direction: Direction = "both"): Promise<void> {
    percent(pct, "loss");
    if (direction !== "down") this.#loss.up = pct;
    if (direction !== "up") this.#loss.down = pct;
    return this.#apply();
  }

  /** Send `pct` % of the datagrams going `direction` twice, at random. */
  duplicate(pct: number, direction: Direction = "both"): Promise<void> {
    percent(pct, "duplicate");
    if (direction !== "down") this.#dup.up = pct;
    if (direction !== "up") this.#dup.down = pct;
    return this.#apply();
  }

  /**
   * Rewrite the source of UDP datagrams from `match` to `address`:`port`, and relay the datagrams sent
   * to `address`:`port` from the other side back to `match`: an on-path attacker posing as (or a NAT
   * rebinding in front of) that host. Stateless payload rewrites in raw prerouting with `notrack`, so
   * `address` needs to exist nowhere (on the router it would be a martian source).
   */
  rewriteSource(match: UdpSource, address: string, port: number): Promise<void> {
    this.#rewrites = this.#rewrites.filter((r) =>
      r.match.address !== match.address || r.match.port !== match.port
    );
    this.#rewrites.push({ match, to: { address, port } });
    return this.#apply();
  }

  /** Drop everything going `direction`. */
  blackhole(direction: Direction = "both"): Promise<void> {
    if (direction !== "down") this.#blackhole.up = true;
    if (direction !== "up") this.#blackhole.down = true;
    return this.#apply();
  }

  /** Drop (without any ICMP) every packet longer than `bytes` (IP length), both ways; 0 lifts it. */
  dropAbove(bytes: number): Promise<void> {
    if (!Number.isInteger(bytes) || bytes < 0) {
      throw new RangeError(`dropAbove: want bytes >= 0, got ${bytes}`);
    }
    this.#dropAbove = bytes;
    return this.#apply();
  }

  /** Back to a perfect path. */
  clear(): Promise<void> {
    this.#loss = { up: 0, down: 0 };
    this.#dup = { up: 0, down: 0 };
    this.#blackhole = { up: false, down: false };
    this.#dropAbove = 0;
    this.#rewrites = [];
    return this.#apply();
  }

  /** Capture on the router's interface towards `side` (only what crosses that link). */
  capture(side: "client" | "server", filter = "", maxMs = 60_000): Promise<Capture> {
    const iface = side === "client" ? ROUTER_CLIENT_IFACE : ROUTER_SERVER_IFACE;
    return this.router.capture(filter, maxMs, { iface });
  }

  /** The router's current rules (for failure messages). */
  ruleset(): Promise<string> {
    return mustRun(["ip", "netns", "exec", this.router.ns, "nft", "list", "table", "ip", TABLE]);
  }

  /** The nft script for the current controls: the table replaced in one transaction. */
  script(): string {
    const pre: string[] = [];
    for (const { match, to } of this.#rewrites) {
      const [from, other] = arrivesOn(match.address);
      pre.push(
        `iifname "${from}" ip saddr ${match.address} udp sport ${match.port} notrack ` +
          `ip saddr set ${to.address} udp sport set ${to.port}`,
        `iifname "${other}" ip daddr ${to.address} udp dport ${to.port} notrack ` +
          `ip daddr set ${match.address} udp dport set ${match.port}`,
      );
    }
    const fwd: string[] = [];
    if (this.#blackhole.up) fwd.push(`${sides("up")[0]} drop`);
    if (this.#blackhole.down) fwd.push(`${sides("down")[0]} drop`);
    if (this.#dropAbove > 0) fwd.push(`meta length > ${this.#dropAbove} drop`);
    for (const d of ["up", "down"] as const) {
      if (this.#loss[d] > 0) fwd.push(`${sides(d)[0]} ${chance(this.#loss[d])}drop`);
    }
    // The copy goes straight to the next hop out of the other link; the original goes on as usual.
    if (this.#dup.up > 0) {
      fwd.push(
        `${sides("up")[0]} ${chance(this.#dup.up)}` +
          `dup to ${SERVER_ADDRESS} device "${ROUTER_SERVER_IFACE}"`,
      );
    }
    if (this.#dup.down > 0) {
      fwd.push(
        `${sides("down")[0]} ${chance(this.#dup.down)}` +
          `dup to ${CLIENT_ADDRESS} device "${ROUTER_CLIENT_IFACE}"`,
      );
    }
    const chain = (name: string, hook: string, prio: string, rules: string[]) =>
      `  chain ${name} {\n    type filter hook ${hook} priority ${prio}; policy accept;\n` +
      rules.map((r) => `    ${r}\n`).join("") + `  }\n`;
    return `table ip ${TABLE}\ndelete table ip ${TABLE}\ntable ip ${TABLE} {\n` +
      chain("rewrite", "prerouting", "-300", pre) + chain("path", "forward", "0", fwd) + `}\n`;
  }

  async #apply(): Promise<void> {
    await mustRun(["ip", "netns", "exec", this.router.ns, "nft", "-f", "-"], this.script());
  }

  /** Removes every namespace and process. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.net.destroy();
  }
}
