/**
 * `vpn client --unblock`: undo what a client killed without a clean stop left on purpose (so nothing
 * leaked meanwhile): its kill switch table, the unreachable IPv6 routes, and its resolv.conf (written back
 * from the backup in the state folder, or from the copy inside a file of ours; see src/host/dns.ts).
 */
import { removeKillSwitch } from "../host/kill_switch.ts";
import { removeStaleRejectRoutes } from "../host/full_tunnel_routes.ts";
import { restoreStaleResolvConf } from "../host/dns.ts";
import { controlSocketPath } from "../ops/control_path.ts";
import { log } from "../ops/log.ts";

/** Refuses while the client of `tun` still runs (its control socket answers); returns the exit code. */
export async function runUnblock(tun: string): Promise<number> {
  try {
    const conn = await Deno.connect({ transport: "unix", path: controlSocketPath(tun) });
    conn.close();
    log.error("the client of this TUN device is running; stop it instead (it undoes everything)", { tun });
    return 1;
  } catch {
    // not running: go ahead
  }
  const removed: string[] = [];
  if (await removeKillSwitch(tun)) removed.push("kill switch");
  removed.push(...removeStaleRejectRoutes());
  if (restoreStaleResolvConf()) removed.push("resolv.conf");
  log.info("unblocked", { tun, removed: removed.join(",") || "nothing" });
  return 0;
}
