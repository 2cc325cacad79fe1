/**
 * `vpn peer add | list | remove`: manage the `[[server.peers]]` of a server's config file. `add` makes a
 * new key for the peer, appends its entry, writes the client's complete config and tells a running server
 * to reload; `remove` cuts the entry out and the running server disconnects the peer. Every check runs
 * before anything is written, so bad input leaves the config file as it was.
 */
import { ConfigError } from "./config_error.ts";
import { ConfigFile } from "./config_file.ts";
import {
  configPath,
  DEFAULT_CONFIG_FILE,
  type Flags,
  type ServerOptions,
  serverOptionsFrom,
} from "./config.ts";
import { lockConfig, replaceFile } from "./config_edit.ts";
import { appendPeerEntry, removePeerEntry } from "./peer_entry.ts";
import { ensurePrivateDir, generateKey, keyToBase64 } from "./key_file.ts";
import {
  type Cidr,
  cidrContains,
  cidrsOverlap,
  formatCidr,
  ipEquals,
  networkOf,
  parseCidr,
} from "../net/cidr.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../net/host_port.ts";
import { formatIp } from "../net/ip_address.ts";
import { ipv4ToNumber, numberToIpv4 } from "../net/ip_packet.ts";
import { fetchStatus } from "../ops/status.ts";
import { readPidFile } from "../ops/pid_file.ts";
import type { PeerStatus, StatusReport } from "../ops/status_report.ts";

const NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
/** How long `peer add` / `peer remove` wait for a running server to show the change. */
const RELOAD_WAIT_MS = 5000;

function bad(field: string, given: string, allowed: string): never {
  throw new ConfigError(`${field}: got ${JSON.stringify(given)}; allowed: ${allowed}`);
}

function checkName(name: string | undefined, cmd: string): string {
  if (name === undefined) throw new ConfigError(`vpn peer ${cmd}: missing NAME; see 'vpn peer --help'`);
  if (!NAME.test(name)) bad("NAME", name, "1 to 64 characters from A-Z a-z 0-9 _ . @ -");
  return name;
}

/** The config `vpn peer` works on: --config, else /etc/vpn/vpn.toml. */
function peerConfigPath(flags: Flags): string {
  return configPath(flags) ?? (typeof flags.config === "string" ? flags.config : DEFAULT_CONFIG_FILE);
}

function loadConfig(path: string): { text: string; options: ServerOptions } {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new ConfigError(`--config ${path}: cannot read it: ${why}`);
  }
  return { text, options: serverOptionsFrom(new ConfigFile(path, text), {}, {}) };
}

/** The running server that reads `path`, when there is one: its pid and status. */
async function runningServer(
  path: string,
  tun: string,
): Promise<{ pid: number; status: StatusReport } | null> {
  const pid = readPidFile(tun);
  if (pid === null || pid.config !== Deno.realPathSync(path)) return null;
  try {
    const status = await fetchStatus(tun);
    return status.role === "server" ? { pid: pid.pid, status } : null;
  } catch {
    return null; // a pid file left by a killed server
  }
}

/** SIGHUP the running server and wait until its status shows `done`; a message for the user. */
async function reload(path: string, tun: string, done: (s: StatusReport) => boolean): Promise<string> {
  const running = await runningServer(path, tun);
  if (running === null) return `no server is running on ${tun} with ${path}; it applies at the next start`;
  Deno.kill(running.pid, "SIGHUP");
  const deadline = Date.now() + RELOAD_WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    if (done(await fetchStatus(tun).catch(() => running.status))) {
      return `the running server on ${tun} (pid ${running.pid}) applied it`;
    }
  }
  return `sent SIGHUP to the server on ${tun} (pid ${running.pid}), but its status did not show the change ` +
    `within ${RELOAD_WAIT_MS / 1000} s; see its log`;
}

/** The lowest address of the subnet that neither the server, a listed peer nor a connected client holds. */
function lowestFree(o: ServerOptions, taken: Set<number>): number {
  const net = ipv4ToNumber(networkOf(o.address).address);
  const size = Math.min(2 ** (32 - o.address.prefixLength), 1 << 20);
  for (let n = net + 1; n < net + size - 1; n++) {
    if (!taken.has(n)) return n;
  }
  throw new ConfigError(`--address: the subnet ${formatCidr(o.address)} has no free address left`);
}

function pickAddress(o: ServerOptions, flags: Flags, status: StatusReport | null): string {
  const taken = new Set<number>([ipv4ToNumber(o.address.address)]);
  for (const p of o.peers) taken.add(ipv4ToNumber(p.address.address));
  const given = flags.address as string | undefined;
  if (given === undefined) {
    for (const p of status?.peers ?? []) {
      const a = p.address ? parseCidr(p.address, "host") : null;
      if (a && a.family === 4) taken.add(ipv4ToNumber(a.address));
    }
    return formatIp(numberToIpv4(lowestFree(o, taken)));
  }
  const a = parseCidr(given, "host");
  if (!a || a.family !== 4 || a.prefixLength !== 32) bad("--address", given, "one IPv4 address");
  const subnet = formatCidr(networkOf(o.address));
  const n = ipv4ToNumber(a.address);
  const net = ipv4ToNumber(networkOf(o.address).address);
  const last = net + 2 ** (32 - o.address.prefixLength) - 1;
  if (!cidrContains(o.address, a.address) || n === net || n === last) {
    bad("--address", given, `a host address inside the server's subnet ${subnet}`);
  }
  if (ipEquals(a.address, o.address.address)) {
    bad("--address", given, "an address other than the server's own");
  }
  const holder = o.peers.find((p) => ipEquals(p.address.address, a.address));
  if (holder) bad("--address", given, `an address no other peer has (peer "${holder.name}" has it)`);
  return formatIp(a.address);
}

function checkRoutes(o: ServerOptions, flags: Flags): Cidr[] {
  const routes: Cidr[] = [];
  for (const text of (flags.route as string[] | undefined) ?? []) {
    const c = parseCidr(text);
    if (!c) bad("--route", text, "a network as ADDRESS/PREFIX, e.g. 192.168.50.0/24");
    const r = networkOf(c);
    const subnets = [o.address, o.address6].filter((x): x is Cidr => x !== undefined).map(networkOf);
    for (const s of subnets) {
      if (cidrsOverlap(r, s)) bad("--route", text, `a network outside the overlay subnet ${formatCidr(s)}`);
    }
    for (const p of o.peers) {
      const clash = p.routes.find((x) => cidrsOverlap(x, r));
      if (clash) {
        bad("--route", text, `a network that does not overlap peer "${p.name}"'s route ${formatCidr(clash)}`);
      }
    }
    const own = routes.find((x) => cidrsOverlap(x, r));
    if (own) bad("--route", text, `a network that does not overlap --route ${formatCidr(own)}`);
    routes.push(r);
  }
  return routes;
}

function endpointOf(o: ServerOptions, flags: Flags, path: string): HostPort {
  const given = flags.endpoint as string | undefined;
  if (given !== undefined) {
    const hp = parseHostPort(given);
    if (typeof hp === "string") bad("--endpoint", given, `HOST:PORT where clients reach this server (${hp})`);
    return hp;
  }
  if (o.publicEndpoint) return o.publicEndpoint;
  throw new ConfigError(
    `--endpoint: missing; give the address clients reach this server at, e.g. --endpoint vpn.example.com:51820, ` +
      `or set public_endpoint = "HOST:PORT" in [server] of ${path}`,
  );
}

/** The client's complete config: server, key, pinned address; routes to the other peers' networks. */
function clientConfig(
  name: string,
  o: ServerOptions,
  endpoint: HostPort,
  address: string,
  key: string,
  routes: Cidr[],
): string {
  const others = o.peers.flatMap((p) => p.routes).map(formatCidr);
  const lines = [
    `# vpn client config for peer "${name}", written by 'vpn peer add'. It holds the peer's own key:`,
    "# keep it private (mode 0600). Run: vpn client --config THIS_FILE",
    `# The server announces the MTU (${o.mtu}) and the keepalive interval at each handshake.`,
    "[client]",
    `peer = ${JSON.stringify(formatHostPort(endpoint))}`,
    `address = ${JSON.stringify(address)}`,
    `key = ${JSON.stringify(key)}`,
  ];
  if (others.length > 0) {
    lines.push("# Networks behind the server's other peers.");
    lines.push(`routes = [${others.map((r) => JSON.stringify(r)).join(", ")}]`);
  }
  if (routes.length > 0) {
    lines.push(`# This client forwards for its LAN (${routes.map(formatCidr).join(", ")}).`);
    lines.push("forward = true");
  }
  return lines.join("\n") + "\n";
}

/** `vpn peer add NAME`. */
async function peerAdd(flags: Flags, name: string): Promise<number> {
  const path = peerConfigPath(flags);
  const out = (flags.out as string | undefined) ?? `${name}.toml`;
  if (out === "") bad("--out", out, "a file path");
  let created = false;
  if (flags.config === undefined) {
    if (!fileExists(path)) {
      // A fresh host: the default config starts as an empty [server] section.
      ensurePrivateDir(path);
      Deno.writeTextFileSync(path, "[server]\n", { mode: 0o600, createNew: true });
      created = true;
    }
  }
  const lock = await lockConfig(path);
  let keyPath = "";
  let outWritten = false;
  try {
    const { text, options } = loadConfig(path);
    if (options.peers.some((p) => p.name === name)) {
      bad("NAME", name, `a name no other peer in ${path} has`);
    }
    const endpoint = endpointOf(options, flags, path);
    if (fileExists(out)) {
      const kind = Deno.lstatSync(out).isSymlink ? "a symlink" : "a file";
      bad(
        "--out",
        out,
        `a path where nothing exists yet, not ${kind} (remove it or choose another with --out)`,
      );
    }
    const status = (await runningServer(path, options.tun))?.status ?? null;
    const address = pickAddress(options, flags, status);
    const routes = checkRoutes(options, flags);
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
    const keyFile = `peers/${name}.key`;
    keyPath = dir + keyFile;
    const key = keyToBase64(generateKey());
    ensurePrivateDir(keyPath);
    try {
      writeNewPrivateFile(keyPath, key + "\n");
    } catch (e) {
      const k = keyPath;
      keyPath = ""; // not ours: never remove it
      throw new ConfigError(`key file ${k}: cannot create it: ${(e as Error).message}`);
    }
    const next = appendPeerEntry(text, { name, address, keyFile, routes: routes.map(formatCidr) });
    serverOptionsFrom(new ConfigFile(path, next), {}, {}); // the new file must load, or nothing is written
    try {
      writeNewPrivateFile(out, clientConfig(name, options, endpoint, address, key, routes));
    } catch (e) {
      throw new ConfigError(`--out ${out}: cannot create it: ${(e as Error).message}`);
    }
    outWritten = true;
    replaceFile(path, next);
    lock.release();
    const applied = await reload(path, options.tun, (s) => s.peers.some((p) => p.name === name));
    const shown = out.includes("/") ? out : `./${out}`;
    console.log(
      [
        `added peer ${name} with address ${address}${
          routes.length ? `, routes ${routes.map(formatCidr).join(", ")}` : ""
        } to ${path}${created ? " (created)" : ""}`,
        `${applied}`,
        `client config written to ${
          Deno.realPathSync(out)
        } (mode 0600; it holds the peer's key: copy it privately)`,
        `on the client run: vpn client --config ${shown.split("/").pop()}`,
      ].join("\n"),
    );
    return 0;
  } catch (e) {
    if (keyPath) Deno.remove(keyPath).catch(() => {});
    if (outWritten) Deno.remove(out).catch(() => {});
    if (created) Deno.removeSync(path);
    lock.release();
    throw e;
  }
}

/** `vpn peer remove NAME`. */
async function peerRemove(flags: Flags, name: string): Promise<number> {
  const path = peerConfigPath(flags);
  const lock = await lockConfig(path);
  let tun: string, keyFile: string | undefined;
  try {
    const { text, options } = loadConfig(path);
    const index = options.peers.findIndex((p) => p.name === name);
    if (index < 0) {
      const names = options.peers.map((p) => p.name).join(", ") || "none";
      bad("NAME", name, `a peer listed in ${path} (${names})`);
    }
    const next = removePeerEntry(text, index);
    const after = next === null ? null : serverOptionsFrom(new ConfigFile(path, next), {}, {});
    const expected = options.peers.filter((p) => p.name !== name).map((p) => p.name).join();
    if (after === null || after.peers.map((p) => p.name).join() !== expected) {
      throw new ConfigError(
        `${path}: cannot find the lines of peer "${name}" to remove; edit the file by hand`,
      );
    }
    const raw = (new ConfigFile(path, text).data.server as { peers: Record<string, unknown>[] }).peers[index];
    if (raw.key_file === `peers/${name}.key`) {
      keyFile = (path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "") + raw.key_file;
    }
    replaceFile(path, next!);
    tun = options.tun;
  } finally {
    lock.release();
  }
  if (keyFile) Deno.remove(keyFile).catch(() => {});
  const applied = await reload(path, tun, (s) => !s.peers.some((p) => p.name === name));
  console.log(`removed peer ${name} from ${path}\n${applied}`);
  return 0;
}

/**
 * Creates `path` holding `text`, 0600 from the first byte: O_CREAT|O_EXCL refuses anything already there
 * (a symlink included, dangling or not), and no chmod follows, since a chmod by path could follow a symlink
 * swapped in after the create. The umask can only narrow the mode further.
 */
function writeNewPrivateFile(path: string, text: string): void {
  const f = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  try {
    const bytes = new TextEncoder().encode(text);
    for (let at = 0; at < bytes.length;) at += f.writeSync(bytes.subarray(at));
  } finally {
    f.close();
  }
}

function fileExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function ago(s: number | null | undefined): string {
  if (s === null || s === undefined) return "never";
  return s < 120
    ? `${Math.round(s)}s ago`
    : s < 7200
    ? `${Math.round(s / 60)}m ago`
    : `${Math.round(s / 3600)}h ago`;
}

/** `vpn peer list`. */
async function peerList(flags: Flags): Promise<number> {
  const path = peerConfigPath(flags);
  const { options } = loadConfig(path);
  const status = (await runningServer(path, options.tun))?.status ?? null;
  const live = new Map<string, PeerStatus>((status?.peers ?? []).map((p) => [p.name, p]));
  const rows = options.peers.map((p) => {
    const s = live.get(p.name);
    return {
      name: p.name,
      address: formatIp(p.address.address),
      routes: p.routes.map(formatCidr),
      own_key: p.key !== undefined,
      endpoint: s?.endpoint ?? null,
      last_handshake_s: s?.last_handshake_s ?? null,
      rx_bytes: s?.rx_bytes ?? null,
      tx_bytes: s?.tx_bytes ?? null,
    };
  });
  if (flags.json) {
    console.log(JSON.stringify({ config: path, running: status !== null, peers: rows }, null, 2));
    return 0;
  }
  const table = [["NAME", "ADDRESS", "ROUTES", "HANDSHAKE", "RX", "TX"]];
  for (const r of rows) {
    table.push([
      r.name,
      r.address,
      r.routes.join(",") || "-",
      status ? ago(r.last_handshake_s) : "-",
      r.rx_bytes === null ? "-" : String(r.rx_bytes),
      r.tx_bytes === null ? "-" : String(r.tx_bytes),
    ]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  console.log(
    `${path}: ${rows.length} peer(s); server ${status ? `running on ${options.tun}` : "not running"}`,
  );
  if (rows.length > 0) {
    console.log(table.map((row) => row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n"));
  }
  return 0;
}

/** `vpn peer SUBCOMMAND`; `words` are the positional arguments after `peer`. */
export async function runPeer(words: string[], flags: Flags): Promise<number> {
  const [sub, name, extra] = words;
  if (extra !== undefined) throw new ConfigError(`vpn peer: unexpected argument "${extra}"`);
  switch (sub) {
    case "add":
      return await peerAdd(flags, checkName(name, "add"));
    case "remove":
      return await peerRemove(flags, checkName(name, "remove"));
    case "list":
      if (name !== undefined) throw new ConfigError(`vpn peer list: unexpected argument "${name}"`);
      return await peerList(flags);
  }
  throw new ConfigError(
    `vpn peer: ${
      sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`
    }; allowed: add, list, remove`,
  );
}
