/** `vpn status`: ask a running instance for its snapshot and print it. */
import { controlDir, controlSocketPath } from "./control_path.ts";
import { invalidInterfaceName } from "../net/interface_name.ts";
import type { StatusReport } from "./status_report.ts";

/** Failed to reach the running instance. */
export class StatusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StatusError";
  }
}

/** Read the snapshot from the control socket of `tun`. */
export async function fetchStatus(tun: string): Promise<StatusReport> {
  const why = invalidInterfaceName(tun);
  if (why !== null) throw new StatusError(`bad interface name ${JSON.stringify(tun)}: it ${why}`);
  const path = controlSocketPath(tun);
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.ConnectionRefused) {
      throw new StatusError(`no vpn is running on ${tun} (nothing listens on ${path})`);
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new StatusError(`permission denied on ${path}: the control socket is root-only; run as root`);
    }
    throw new StatusError(`cannot reach ${path}: ${(e as Error).message}`);
  }
  try {
    const text = await new Response(conn.readable).text();
    return JSON.parse(text) as StatusReport;
  } catch (e) {
    throw new StatusError(`bad answer from ${path}: ${(e as Error).message}`);
  }
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) [n, i] = [n / 1024, i + 1];
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function ago(s: number | null): string {
  if (s === null) return "never";
  if (s < 120) return `${Math.round(s)}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd()).join("\n");
}

/** The snapshot as aligned text for a terminal. */
export function formatStatus(r: StatusReport): string {
  const d = r.drops;
  const head = [
    `${r.role} on ${r.interface} ${r.address ?? "(no address yet)"}` +
    (r.listen ? ` listening ${r.listen}` : ""),
    `up ${ago(r.uptime_s).replace(" ago", "")}, crypto ${r.crypto}, udp ${r.udp}`,
    `drops (not charged to a peer): auth ${d.auth}, replay ${d.replay}, no-route ${d.no_route}, ` +
    `oversize ${d.oversize}, malformed ${d.malformed}, relay ${d.relay}, busy ${d.busy}, ` +
    `wrong-source ${d.wrong_source ?? 0}, source ${d.source ?? 0}`,
  ];
  // Older instances (before the field existed) answer without it.
  const e = r.errors;
  if (e) {
    head.push(
      `errors: tun-write ${e.tun_write}, send-dropped ${e.send_dropped}, send-refused ${e.send_refused}, ` +
        `truncated ${e.truncated}`,
    );
  }
  if (r.peers.length === 0) return [...head, "no peers"].join("\n");
  const rows = [[
    "PEER",
    "ADDRESS",
    "ENDPOINT",
    "HANDSHAKE",
    "RX",
    "TX",
    "RX PKTS",
    "TX PKTS",
    "DROPS a/r/n/o/m/c/w/s",
  ]];
  for (const p of r.peers) {
    const pd = p.drops;
    rows.push([
      p.name,
      p.address ?? "-",
      p.endpoint ?? "-",
      ago(p.last_handshake_s),
      bytes(p.rx_bytes),
      bytes(p.tx_bytes),
      String(p.rx_packets),
      String(p.tx_packets),
      `${pd.auth}/${pd.replay}/${pd.no_route}/${pd.oversize}/${pd.malformed}/${pd.relay}/${
        pd.wrong_source ?? 0
      }/${pd.source ?? 0}`,
    ]);
  }
  return [...head, "", table(rows)].join("\n");
}

/** The TUN names of the control sockets in the run folder, sorted; empty when the folder is missing. */
export function listInstances(dir = controlDir()): string[] {
  const names: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      const m = /^(.*)\.sock$/.exec(e.name);
      if (m && invalidInterfaceName(m[1]) === null && !e.isDirectory && !e.isFile && !e.isSymlink) {
        names.push(m[1]);
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new StatusError(`permission denied on ${dir}: the control sockets are root-only; run as root`);
    }
    throw new StatusError(`cannot list ${dir}: ${(e as Error).message}`);
  }
  return names.sort();
}

/**
 * `vpn status`: prints the snapshot of `tun`, or without `tun` of every running instance (one: as with
 * `--tun`; several: one block each, a JSON array with `--json`). Exit code 1 when none answers. The caller
 * checks `tun` (a usage error); `fetchStatus` refuses a bad one too.
 */
export async function runStatus(opts: { tun?: string; json: boolean }): Promise<number> {
  try {
    if (opts.tun !== undefined) {
      const report = await fetchStatus(opts.tun);
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatStatus(report));
      return 0;
    }
    const names = listInstances();
    if (names.length === 0) throw new StatusError(`no vpn is running (no control socket in ${controlDir()})`);
    const reports: StatusReport[] = [];
    for (const name of names) {
      try {
        reports.push(await fetchStatus(name));
      } catch (e) {
        // A socket file left by a killed instance: say so and show the others.
        if (!(e instanceof StatusError)) throw e;
        console.error(`vpn status: ${e.message}`);
      }
    }
    if (reports.length === 0) return 1;
    if (reports.length === 1) {
      console.log(opts.json ? JSON.stringify(reports[0], null, 2) : formatStatus(reports[0]));
    } else {
      console.log(opts.json ? JSON.stringify(reports, null, 2) : reports.map(formatStatus).join("\n\n"));
    }
    return 0;
  } catch (e) {
    if (e instanceof StatusError) {
      console.error(`vpn status: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
