/**
 * The client's kill switch: an nft table that drops every packet the host sends unless it leaves through
 * the TUN, goes to loopback, or is a datagram to one of the servers (plus link-local housekeeping: IPv6
 * neighbour discovery and DHCP). It lives as long as the client (reconnects included); a clean stop deletes
 * it; after a crash it stays (nothing leaks) until the next start replaces it or `vpn client --unblock`.
 * The table is named after the TUN device, so a restarted client finds and takes over its own table.
 */
import { findTool, RoutingError, runTool } from "./routing.ts";
import type { Cleanup } from "./cleanup.ts";
import { type Endpoint, endpointAddress, endpointIsV4, endpointPort } from "../net/endpoint.ts";
import { log } from "../ops/log.ts";

/** nft table name of the kill switch of TUN device `tun` (interface names are [A-Za-z0-9_.-]). */
export function killSwitchTable(tun: string): string {
  return `vpn_killswitch_${tun.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

function element(ep: Endpoint): string {
  return `${endpointAddress(ep)} . ${endpointPort(ep)}`;
}

/** The nft script that (re)creates the table atomically: an old table of the same name is replaced. */
export function killSwitchScript(tun: string, servers: readonly Endpoint[]): string {
  const t = killSwitchTable(tun);
  const v4 = servers.filter(endpointIsV4).map(element);
  const v6 = servers.filter((e) => !endpointIsV4(e)).map(element);
  const set = (name: string, type: string, elems: string[]) =>
    `  set ${name} { type ${type} . inet_service; ${
      elems.length ? `elements = { ${elems.join(", ")} }` : ""
    } }\n`;
  // "table; delete table; table {...}" in one script: one transaction, so there is no moment without rules.
  return `table inet ${t}\ndelete table inet ${t}\ntable inet ${t} {\n` +
    set("servers4", "ipv4_addr", v4) +
    set("servers6", "ipv6_addr", v6) +
    `  chain output {\n` +
    `    type filter hook output priority filter; policy drop;\n` +
    `    oifname "lo" accept\n` +
    `    oifname "${tun}" accept\n` +
    `    ip daddr . udp dport @servers4 accept\n` +
    `    ip6 daddr . udp dport @servers6 accept\n` +
    // Link-local housekeeping that carries no user traffic: finding the gateway, and renewing a DHCP lease.
    `    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept\n` +
    `    udp sport 68 udp dport 67 accept\n` +
    `    ip6 daddr ff02::1:2 udp dport 547 accept\n` +
    `    counter\n` +
    `  }\n}\n`;
}

/** An installed kill switch; `allow` adds a server endpoint found later (re-resolved name, failover). */
export class KillSwitch {
  readonly table: string;
  readonly #nft: string;
  readonly #allowed = new Set<string>();

  private constructor(nft: string, table: string, servers: readonly Endpoint[]) {
    this.#nft = nft;
    this.table = table;
    for (const s of servers) this.#allowed.add(element(s));
  }

  /** Install (or take over) the kill switch of `tun` letting `servers` through; its removal goes to `cleanup`. */
  static async install(cleanup: Cleanup, tun: string, servers: readonly Endpoint[]): Promise<KillSwitch> {
    const nft = findTool("nft");
    if (!nft) throw new RoutingError("--kill-switch needs nft (install the nftables package)");
    const ks = new KillSwitch(nft, killSwitchTable(tun), servers);
    await runTool(nft, ["-f", "-"], killSwitchScript(tun, servers));
    cleanup.add(
      `delete nft table inet ${ks.table}`,
      () => runTool(nft, ["delete", "table", "inet", ks.table]),
    );
    log.info("kill switch on", {
      table: `inet ${ks.table}`,
      allowed: [...ks.#allowed].map((e) => e.replace(" . ", ":")).join(","),
    });
    return ks;
  }

  /** Let datagrams to `ep` through too (idempotent). */
  async allow(ep: Endpoint): Promise<void> {
    const e = element(ep);
    if (this.#allowed.has(e)) return;
    this.#allowed.add(e);
    const set = endpointIsV4(ep) ? "servers4" : "servers6";
    await runTool(this.#nft, ["add", "element", "inet", this.table, set, `{ ${e} }`]);
    log.info("kill switch: server endpoint allowed", { endpoint: e.replace(" . ", ":") });
  }
}

/** Delete the kill switch table of `tun` if present (`vpn client --unblock`); true when there was one. */
export async function removeKillSwitch(tun: string): Promise<boolean> {
  const nft = findTool("nft");
  if (!nft) return false;
  try {
    await runTool(nft, ["delete", "table", "inet", killSwitchTable(tun)]);
    return true;
  } catch {
    return false; // no such table
  }
}
