/** Which settings differ between the running config and a re-read one, for SIGHUP's report. */
import { type Cidr, formatCidr } from "../net/cidr.ts";
import { formatHostPort, type HostPort } from "../net/host_port.ts";
import type { ClientOptions, KeySpec, ServerOptions } from "./config.ts";

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

const cidr = (c: Cidr | undefined): string => c ? formatCidr(c) : "none";
const list = (l: readonly string[]): string => l.join(",") || "none";
const hooks = (h: readonly (readonly string[])[]): string =>
  h.map((argv) => argv.join(" ")).join("; ") || "none";
const hostPort = (h: HostPort | undefined): string => h ? formatHostPort(h) : "none";

/** Settings shown as text, by config name; the key is compared apart. */
function changes<T extends { key: KeySpec }>(
  running: T,
  next: T,
  fields: Record<string, (o: T) => string>,
): SettingChange[] {
  const out: SettingChange[] = [];
  for (const [setting, show] of Object.entries(fields)) {
    const a = show(running), b = show(next);
    if (a !== b) out.push({ setting, running: a, wanted: b });
  }
  if (!sameKey(running.key, next.key)) {
    out.push({ setting: "key", running: keyText(running.key), wanted: keyText(next.key) });
  }
  return out;
}

/**
 * The server settings a SIGHUP does not apply (all but the peers, `log_level`, `log_format`, and
 * `public_endpoint`, which only `vpn peer add` reads) whose new value differs from the running one. A key is
 * compared by its bytes or file path and shown only by its source.
 */
export function settingsNeedingRestart(running: ServerOptions, next: ServerOptions): SettingChange[] {
  return changes(running, next, {
    listen: (o) => formatHostPort(o.listen),
    tun: (o) => o.tun,
    address: (o) => formatCidr(o.address),
    address6: (o) => cidr(o.address6),
    mtu: (o) => String(o.mtu),
    shared_key: (o) => String(o.sharedKey),
    nat: (o) => o.nat ?? "none",
    forward: (o) => String(o.forward),
    keepalive: (o) => String(o.keepalive),
    client_to_client: (o) => String(o.clientToClient),
    post_up: (o) => hooks(o.postUp),
    pre_down: (o) => hooks(o.preDown),
    dns: (o) => list(o.dns),
    dns_search: (o) => list(o.dnsSearch),
    metrics: (o) => hostPort(o.metrics),
    crypto: (o) => o.crypto,
    udp: (o) => o.udp,
    offload: (o) => o.offload,
  });
}

/** The same for a client: every setting but `log_level` and `log_format` needs a restart. */
export function clientSettingsNeedingRestart(running: ClientOptions, next: ClientOptions): SettingChange[] {
  return changes(running, next, {
    peer: (o) => list(o.servers.map(formatHostPort)),
    tun: (o) => o.tun,
    address: (o) => cidr(o.address),
    routes: (o) => list(o.routes.map(formatCidr)),
    default_route: (o) => String(o.defaultRoute),
    kill_switch: (o) => String(o.killSwitch),
    dns: (o) => String(o.dns),
    forward: (o) => String(o.forward),
    post_up: (o) => hooks(o.postUp),
    pre_down: (o) => hooks(o.preDown),
    keepalive: (o) => o.keepalive === undefined ? "server's" : String(o.keepalive),
    accept_prefix4: (o) => `${o.acceptPrefix4.min}-${o.acceptPrefix4.max}`,
    accept_prefix6: (o) => `${o.acceptPrefix6.min}-${o.acceptPrefix6.max}`,
    accept_network: (o) => list(o.acceptNetwork.map(formatCidr)),
    metrics: (o) => hostPort(o.metrics),
    crypto: (o) => o.crypto,
    udp: (o) => o.udp,
    offload: (o) => o.offload,
  });
}
