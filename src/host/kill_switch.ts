/**
 * The client's kill switch: an nft table that drops every packet the host sends unless it leaves through
 * the TUN, goes to loopback, carries the tunnel socket's firewall mark, or is link-local housekeeping (IPv6
 * neighbour discovery, DHCP broadcasts). It names no address: whatever the server's address becomes
 * (failover, a re-resolved name), only the tunnel's own datagrams leave outside, and a plaintext packet to
 * the server's address does not. It lives as long as the client (reconnects included); a clean stop
 * deletes it; after a crash it stays (nothing leaks) until the next start replaces it or `vpn client
 * --unblock`. The table is named after the exact TUN name and records its owner's pid, so a restarted
 * client takes over its own table and `--unblock` leaves a live client's alone.
 */
import { findTool, RoutingError, runTool } from "./routing.ts";
import type { Cleanup } from "./cleanup.ts";
import { log } from "../ops/log.ts";

/** The tunnel socket's default firewall mark (0xca6c, as wg-quick). */
export const DEFAULT_FWMARK = 51820;

/**
 * nft table name of the kill switch of TUN device `tun`. The encoding is injective (`vpn-0`, `vpn_0` and
 * `vpn.0` get three tables): letters and digits stay, `_` becomes `__`, `-` `_d`, `.` `_o`, any other
 * character `_x` and its code in six hex digits. A 15-character name gives at most 135 characters (nft: 256).
 */
export function killSwitchTable(tun: string): string {
  let name = "vpn_killswitch_";
  for (const ch of tun) {
    if (/[A-Za-z0-9]/.test(ch)) name += ch;
    else if (ch === "_") name += "__";
    else if (ch === "-") name += "_d";
    else if (ch === ".") name += "_o";
    else name += `_x${ch.codePointAt(0)!.toString(16).padStart(6, "0")}`;
  }
  return name;
}

/** Who installed a table: the pid and its start time (so a reused pid is not mistaken for the owner). */
export interface KillSwitchOwner {
  readonly pid: number;
  readonly start: string;
}

/** What the kill switch of one TUN lets out besides the TUN itself. */
export interface KillSwitchOptions {
  /** The firewall mark of the tunnel's UDP socket: only datagrams carrying it leave outside the TUN. */
  readonly mark: number;
  /**
   * The tunnel socket's local UDP port, for a socket that cannot carry the mark itself (no fd, as with
   * Deno's UDP): a route chain marks what leaves from that port. Null when the socket is marked already.
   */
  readonly markPort: number | null;
  readonly owner: KillSwitchOwner;
}

/** The owner comment of a table: `vpn client pid N start S`. */
function ownerComment(o: KillSwitchOwner): string {
  return `vpn client pid ${o.pid} start ${o.start}`;
}

/** The owner a table listing records, or null when it records none. */
export function parseOwner(listing: string): KillSwitchOwner | null {
  const m = /comment "vpn client pid (\d+) start (\d+)"/.exec(listing);
  return m ? { pid: Number(m[1]), start: m[2] } : null;
}

/** The nft script that (re)creates the table atomically: an old table of the same name is replaced. */
export function killSwitchScript(tun: string, o: KillSwitchOptions): string {
  const t = killSwitchTable(tun);
  const mark = `0x${o.mark.toString(16)}`;
  const marking = o.markPort === null ? "" : `  chain tunnel_mark {\n` +
    `    type route hook output priority mangle; policy accept;\n` +
    `    udp sport ${o.markPort} meta mark set ${mark}\n` +
    `  }\n`;
  // "table; delete table; table {...}" in one script: one transaction, so there is no moment without rules.
  return `table inet ${t}\ndelete table inet ${t}\ntable inet ${t} {\n` +
    `  comment "${ownerComment(o.owner)}"\n` +
    marking +
    `  chain output {\n` +
    `    type filter hook output priority filter; policy drop;\n` +
    `    oifname "lo" accept\n` +
    `    oifname "${tun}" accept\n` +
    `    meta mark ${mark} accept\n` +
    // Link-local housekeeping that carries no user traffic: finding the gateway, and renewing a DHCP lease
    // (a broadcast on the underlay; DHCPv6 from a link-local source to the all-servers group).
    `    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept\n` +
    `    oifname != "${tun}" udp sport 68 udp dport 67 ip daddr 255.255.255.255 accept\n` +
    `    ip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept\n` +
    `    counter\n` +
    `  }\n}\n`;
}

/** Start time of process `pid` (field 22 of /proc/PID/stat), or null when there is no such process. */
export function processStart(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** This process as a table owner. */
export function thisOwner(): KillSwitchOwner {
  return { pid: Deno.pid, start: processStart(Deno.pid) ?? "0" };
}

/** True when the process that recorded itself as `o` still runs. */
export function ownerAlive(o: KillSwitchOwner): boolean {
  return processStart(o.pid) === o.start;
}

/** The listing of nft table `inet <table>`, or null when there is none. */
async function listTableNamed(nft: string, table: string): Promise<string | null> {
  const out = await new Deno.Command(nft, {
    args: ["list", "table", "inet", table],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.success ? new TextDecoder().decode(out.stdout) : null;
}

/** The live owner of the kill switch of `tun`, or null when it has none (absent, or its owner died). */
export async function liveKillSwitchOwner(tun: string): Promise<KillSwitchOwner | null> {
  const nft = findTool("nft");
  const listing = nft ? await listTableNamed(nft, killSwitchTable(tun)) : null;
  const owner = listing === null ? null : parseOwner(listing);
  return owner && ownerAlive(owner) ? owner : null;
}

/** Live owners of any client's kill switch on this host (the reject routes are shared, not per TUN). */
export async function liveKillSwitchOwners(): Promise<KillSwitchOwner[]> {
  const nft = findTool("nft");
  if (!nft) return [];
  const out = await new Deno.Command(nft, {
    args: ["list", "tables"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const owners: KillSwitchOwner[] = [];
  for (const m of new TextDecoder().decode(out.stdout).matchAll(/^table inet (vpn_killswitch_\w+)$/gm)) {
    const listing = await listTableNamed(nft, m[1]);
    const o = listing === null ? null : parseOwner(listing);
    if (o && ownerAlive(o)) owners.push(o);
  }
  return owners;
}

/** An installed kill switch. */
export class KillSwitch {
  readonly table: string;

  private constructor(table: string) {
    this.table = table;
  }

  /** Install (or take over a dead client's) kill switch of `tun`; its removal goes to `cleanup`. */
  static async install(cleanup: Cleanup, tun: string, o: KillSwitchOptions): Promise<KillSwitch> {
    const nft = findTool("nft");
    if (!nft) throw new RoutingError("--kill-switch needs nft (install the nftables package)");
    const live = await liveKillSwitchOwner(tun);
    if (live && live.pid !== o.owner.pid) {
      throw new RoutingError(
        `the kill switch of ${tun} belongs to running process ${live.pid}; stop it first`,
      );
    }
    const ks = new KillSwitch(killSwitchTable(tun));
    await runTool(nft, ["-f", "-"], killSwitchScript(tun, o));
    cleanup.add(
      `delete nft table inet ${ks.table}`,
      () => runTool(nft, ["delete", "table", "inet", ks.table]),
    );
    log.info("kill switch on", {
      table: `inet ${ks.table}`,
      mark: `0x${o.mark.toString(16)}`,
      marked_port: o.markPort ?? "socket",
    });
    return ks;
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
