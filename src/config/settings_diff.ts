/** Which server settings differ between the running config and a re-read one, for SIGHUP's report. */
import { formatCidr } from "../net/cidr.ts";
import { formatHostPort } from "../net/host_port.ts";
import type { KeySpec, ServerOptions } from "./config.ts";

/** One changed setting: its config name, and the running and new values as text (never key material). */
export interface SettingChange {
  readonly setting: string;
  readonly running: string;
  readonly wanted: string;
}

function keyText(k: KeySpec): string {
  return k.kind === "file" ? `file ${k.path}` : `inline (${k.source})`;
}

function sameKey(a: KeySpec, b: KeySpec): boolean {
  if (a.kind === "file" || b.kind === "file") return a.kind === b.kind && keyText(a) === keyText(b);
  return a.key.length === b.key.length && a.key.every((v, i) => v === b.key[i]);
}

/**
 * The settings a SIGHUP does not apply (everything but the peers, `log_level` and `log_format`) whose new
 * value differs from the running one. A key is compared by its bytes or file path and shown only as its source.
 */
export function settingsNeedingRestart(running: ServerOptions, next: ServerOptions): SettingChange[] {
  const text = (v: unknown): string => v === undefined ? "none" : String(v);
  const fields: [string, string, string][] = [
    ["listen", formatHostPort(running.listen), formatHostPort(next.listen)],
    ["tun", running.tun, next.tun],
    ["address", formatCidr(running.address), formatCidr(next.address)],
    [
      "address6",
      running.address6 ? formatCidr(running.address6) : "none",
      next.address6 ? formatCidr(next.address6) : "none",
    ],
    ["mtu", String(running.mtu), String(next.mtu)],
    ["nat", text(running.nat), text(next.nat)],
    ["forward", String(running.forward), String(next.forward)],
    ["keepalive", String(running.keepalive), String(next.keepalive)],
    [
      "metrics",
      running.metrics ? formatHostPort(running.metrics) : "none",
      next.metrics ? formatHostPort(next.metrics) : "none",
    ],
    ["crypto", running.crypto, next.crypto],
    ["udp", running.udp, next.udp],
  ];
  const changes: SettingChange[] = fields
    .filter(([, a, b]) => a !== b)
    .map(([setting, a, b]) => ({ setting, running: a, wanted: b }));
  if (!sameKey(running.key, next.key)) {
    changes.push({ setting: "key", running: keyText(running.key), wanted: keyText(next.key) });
  }
  return changes;
}
