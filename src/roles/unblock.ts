/**
 * `vpn client --unblock`: undo what a client killed without a clean stop left on purpose (so nothing
 * leaked meanwhile): its kill switch table, the unreachable IPv6 routes, and its resolv.conf (written back
 * from the backup in the state folder, or from the copy inside a file of ours; see src/host/dns.ts). It
 * refuses while a live instance owns the TUN: its control socket answers, its pid file names a running
 * process, or its kill switch table records an owner that still runs (which holds whatever VPN_RUN_DIR
 * that instance was started with).
 */
import { liveKillSwitchOwner, liveKillSwitchOwners, removeKillSwitch } from "../host/kill_switch.ts";
import { removeStaleRejectRoutes } from "../host/full_tunnel_routes.ts";
import { restoreStaleResolvConf } from "../host/dns.ts";
import { controlSocketPath } from "../ops/control_path.ts";
import { readPidFile } from "../ops/pid_file.ts";
import { log } from "../ops/log.ts";

/** The pid of a live instance owning `tun`, 0 when its control socket answers without one, or null. */
async function liveOwner(tun: string): Promise<number | null> {
  const ks = await liveKillSwitchOwner(tun);
  if (ks) return ks.pid;
  const pid = readPidFile(tun)?.pid;
  if (pid !== undefined && pid !== Deno.pid) {
    try {
      Deno.statSync(`/proc/${pid}`);
      return pid;
    } catch {
      // a stale pid file
    }
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path: controlSocketPath(tun) });
    conn.close();
    return 0;
  } catch {
    return null;
  }
}

/** Refuses while the client of `tun` still runs; returns the exit code. */
export async function runUnblock(tun: string): Promise<number> {
  const owner = await liveOwner(tun);
  if (owner !== null) {
    log.error("the client of this TUN device is running; stop it instead (it undoes everything)", {
      tun,
      pid: owner || "unknown",
    });
    return 1;
  }
  const removed: string[] = [];
  if (await removeKillSwitch(tun)) removed.push("kill switch");
  // The unreachable IPv6 routes are one pair for the host: a live client's kill switch still needs them.
  if ((await liveKillSwitchOwners()).length === 0) removed.push(...removeStaleRejectRoutes());
  if (restoreStaleResolvConf()) removed.push("resolv.conf");
  log.info("unblocked", { tun, removed: removed.join(",") || "nothing" });
  return 0;
}
