/**
 * Server and client settings: built-in defaults, overridden by the config file, then the
 * environment (`VPN_KEY`), then flags. Everything is validated here, before anything touches the host.
 */
import {
  type Cidr,
  cidrContains,
  cidrsOverlap,
  formatCidr,
  ipEquals,
  networkOf,
  parseCidr,
} from "../net/cidr.ts";
import { ipv4ToNumber, numberToIpv4 } from "../net/ip_packet.ts";
import { ConfigError } from "./config_error.ts";
import { ConfigFile } from "./config_file.ts";
import { type HostPort, parseHostPort, parsePort } from "../net/host_port.ts";
import { checkPrivate, KeyError, keyFromBase64, type KeySource, readKeyFile } from "./key_file.ts";
import {
  CONFIG_MAX_ENTRIES,
  CONFIG_MAX_LENGTH,
  DEFAULT_KEEPALIVE_SECONDS,
  DEFAULT_MTU,
  MAX_MTU,
  MIN_MTU,
  MIN_MTU_IPV6,
} from "../protocol/constants.ts";
import { encodeConfigMessage } from "../protocol/wire.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../ops/log.ts";
import { formatIp } from "../net/ip_address.ts";
import { isDomainName } from "../net/domain_name.ts";
import { DEFAULT_PREFIX4, DEFAULT_PREFIX6, type PrefixBounds } from "../protocol/assigned_limits.ts";
import { hostBits, mirroredHost } from "../net/ipv6_mirror.ts";
import { INTERFACE_NAME_RULE, invalidInterfaceName } from "../net/interface_name.ts";
import { AEAD_CHOICES, type AeadChoice } from "../dataplane/aead_select.ts";
import { UDP_CHOICES, type UdpChoice } from "../dataplane/datagram_select.ts";

export { ConfigError } from "./config_error.ts";

/** TUN and UDP offloads: `auto` turns on what the kernel offers, `off` none (for A/B runs). */
export const OFFLOAD_CHOICES = ["auto", "off"] as const;
/** One of `OFFLOAD_CHOICES`. */
export type OffloadChoice = typeof OFFLOAD_CHOICES[number];

/** Where the key comes from: given inline (flag, env, config), or a key file. */
export type KeySpec = KeySource;

/** A `[[server.peers]]` entry: a client pinned to an overlay address, optionally with its own key. */
export interface PeerOptions {
  readonly name: string;
  readonly address: Cidr;
  readonly address6?: Cidr;
  readonly key?: Uint8Array;
  /** Networks behind this client (site-to-site): routed to it, and accepted as sources from it only. */
  readonly routes: readonly Cidr[];
}

/** A hook command: argv, run without a shell. */
export type HookCommand = readonly string[];

/** Everything `vpn server` runs with. */
export interface ServerOptions {
  readonly listen: HostPort;
  readonly tun: string;
  readonly address: Cidr;
  readonly address6?: Cidr;
  readonly mtu: number;
  /** The shared key (used only when `sharedKey`). */
  readonly key: KeySpec;
  /** False: only listed peers, each with its own key, are admitted; the shared key is not even read. */
  readonly sharedKey: boolean;
  readonly nat?: string;
  readonly forward: boolean;
  readonly keepalive: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Where Prometheus metrics are served; undefined = off. */
  readonly metrics?: HostPort;
  readonly crypto: AeadChoice;
  readonly udp: UdpChoice;
  readonly offload: OffloadChoice;
  readonly peers: readonly PeerOptions[];
  /** HOST:PORT clients reach the server at, for the client configs `vpn peer add` writes. */
  readonly publicEndpoint?: HostPort;
  /** Relay packets from one client to another (false: drop and count them). */
  readonly clientToClient: boolean;
  readonly postUp: readonly HookCommand[];
  readonly preDown: readonly HookCommand[];
  /** Resolvers (IP addresses) and search domains pushed to clients; empty = none. */
  readonly dns: readonly string[];
  readonly dnsSearch: readonly string[];
  readonly configFile?: string;
}

/** Everything `vpn client` runs with. */
export interface ClientOptions {
  /** The first server (`servers[0]`). */
  readonly peer: HostPort;
  /** Every server, tried in order (failover). */
  readonly servers: readonly HostPort[];
  /** Apply the resolvers the server pushes (false: `--no-dns` / `dns = false`). */
  readonly dns: boolean;
  /** Drop everything that does not go through the TUN or to a server, while the client runs. */
  readonly killSwitch: boolean;
  readonly tun: string;
  readonly address?: Cidr;
  readonly key: KeySpec;
  readonly routes: readonly Cidr[];
  readonly defaultRoute: boolean;
  /** Enable IPv4 forwarding while running (a client with a LAN behind it). */
  readonly forward: boolean;
  readonly postUp: readonly HookCommand[];
  readonly preDown: readonly HookCommand[];
  /** Keepalive interval in seconds; undefined = what the server announces. */
  readonly keepalive?: number;
  /** Prefix lengths accepted from the server for the IPv4 and IPv6 addresses it assigns. */
  readonly acceptPrefix4: PrefixBounds;
  readonly acceptPrefix6: PrefixBounds;
  /** Networks accepted as assigned even when public or overlapping the host's networks (`accept_network`). */
  readonly acceptNetwork: readonly Cidr[];
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Where Prometheus metrics are served; undefined = off. */
  readonly metrics?: HostPort;
  readonly crypto: AeadChoice;
  readonly udp: UdpChoice;
  readonly offload: OffloadChoice;
  readonly configFile?: string;
}

/** The key file used when none is configured. */
export const DEFAULT_KEY_FILE = "/etc/vpn/vpn.key";
/** The config file read when `--config` is not given and it exists. */
export const DEFAULT_CONFIG_FILE = "/etc/vpn/vpn.toml";

/** Built-in defaults (the design's classic setup). */
const DEFAULTS = {
  listen: "[::]:51820",
  port: 51820,
  tun: "vpn0",
  serverAddress: "10.0.0.1/24",
  mtu: DEFAULT_MTU,
  keyFile: DEFAULT_KEY_FILE,
  keepalive: DEFAULT_KEEPALIVE_SECONDS,
  logLevel: "info" as LogLevel,
} as const;

/** Parsed flags of one command (from `node:util` parseArgs). */
export type Flags = Record<string, string | boolean | string[] | undefined>;

/** A value and where it was given, for error messages. */
interface Given {
  readonly value: unknown;
  readonly where: string;
}

const SERVER_KEYS = [
  "listen",
  "port",
  "tun",
  "address",
  "address6",
  "mtu",
  "key",
  "key_file",
  "nat",
  "forward",
  "keepalive",
  "log_level",
  "log_format",
  "metrics",
  "crypto",
  "udp",
  "offload",
  "peers",
  "public_endpoint",
  "shared_key",
  "client_to_client",
  "post_up",
  "pre_down",
  "dns",
  "dns_search",
];
const PEER_KEYS = ["name", "address", "address6", "key", "key_file", "routes"];
const CLIENT_KEYS = [
  "peer",
  "tun",
  "address",
  "key",
  "key_file",
  "routes",
  "default_route",
  "forward",
  "keepalive",
  "accept_prefix4",
  "accept_prefix6",
  "accept_network",
  "log_level",
  "log_format",
  "metrics",
  "crypto",
  "udp",
  "offload",
  "post_up",
  "pre_down",
  "peers",
  "dns",
  "kill_switch",
];

function fail(where: string, given: unknown, allowed: string): never {
  const shown = typeof given === "string" ? JSON.stringify(given) : String(given);
  throw new ConfigError(`${where}: got ${shown}; allowed: ${allowed}`);
}

/** Reads one section of a config file (or nothing) with `file:line` locations. */
class Section {
  constructor(
    readonly file: ConfigFile | undefined,
    readonly name: string,
    readonly data: Record<string, unknown>,
    readonly index?: number,
  ) {}

  get(key: string): Given | undefined {
    if (!this.file || !(key in this.data)) return undefined;
    return { value: this.data[key], where: this.file.where(this.name, key, this.index) };
  }

  checkKeys(allowed: string[]): void {
    for (const key of Object.keys(this.data)) {
      if (!allowed.includes(key)) {
        const where = this.file ? this.file.where(this.name, key, this.index) : key;
        throw new ConfigError(`${where}: unknown setting; allowed in [${this.name}]: ${allowed.join(", ")}`);
      }
    }
  }
}

function sectionOf(file: ConfigFile | undefined, name: "server" | "client"): Section {
  if (!file) return new Section(undefined, name, {});
  for (const key of Object.keys(file.data)) {
    if (key !== "server" && key !== "client") {
      throw new ConfigError(`${file.path}: unknown section [${key}]; allowed: [server], [client]`);
    }
  }
  const data = file.data[name] ?? {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new ConfigError(`${file.path}: ${name} must be a table ([${name}])`);
  }
  return new Section(file, name, data as Record<string, unknown>);
}

function flag(flags: Flags, name: string): Given | undefined {
  const v = flags[name];
  return v === undefined ? undefined : { value: v, where: `--${name}` };
}

function first(...options: (Given | undefined)[]): Given | undefined {
  return options.find((o) => o !== undefined);
}

function asString(g: Given): string {
  if (typeof g.value !== "string") fail(g.where, g.value, "a string");
  return g.value;
}

function asBool(g: Given): boolean {
  if (typeof g.value !== "boolean") fail(g.where, g.value, "true or false");
  return g.value;
}

function asInt(g: Given, min: number, max: number): number {
  const n = typeof g.value === "string" && /^-?\d+$/.test(g.value) ? Number(g.value) : g.value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    fail(g.where, g.value, `an integer from ${min} to ${max}`);
  }
  return n;
}

function asChoice<T extends string>(g: Given, choices: readonly T[]): T {
  const s = asString(g);
  if (!(choices as readonly string[]).includes(s)) fail(g.where, s, choices.join(", "));
  return s as T;
}

function asIfname(g: Given, allowEmpty: boolean): string {
  const s = asString(g);
  if (!(allowEmpty && s === "") && invalidInterfaceName(s) !== null) fail(g.where, s, INTERFACE_NAME_RULE);
  return s;
}

/** `MIN-MAX` prefix lengths, e.g. "8-30", each 0 to `bits`, MIN not above MAX. */
function asPrefixBounds(g: Given, bits: number): PrefixBounds {
  const s = asString(g);
  const m = /^\/?(\d{1,3})-\/?(\d{1,3})$/.exec(s.trim());
  const min = m ? Number(m[1]) : -1, max = m ? Number(m[2]) : -1;
  if (!m || min > max || max > bits) {
    fail(g.where, s, `MIN-MAX prefix lengths from 0 to ${bits}, e.g. "8-30"`);
  }
  return { min, max };
}

function asHostPort(g: Given): HostPort {
  const s = asString(g);
  const hp = parseHostPort(s);
  if (typeof hp === "string") fail(g.where, s, `HOST:PORT (${hp})`);
  return hp;
}

function asCidr(g: Given, family: 4 | 6 | undefined, mode: "network" | "host-or-network" | "host"): Cidr {
  const s = asString(g);
  const c = parseCidr(s, mode === "network" ? undefined : "host");
  const fam = family ? `an IPv${family}` : "an";
  const form = mode === "network" ? "ADDRESS/PREFIX" : mode === "host" ? "ADDRESS" : "ADDRESS[/PREFIX]";
  if (!c || (family && c.family !== family)) fail(g.where, s, `${fam} address as ${form}`);
  if (mode === "host" && c.prefixLength !== (c.family === 4 ? 32 : 128)) {
    fail(g.where, s, `a single address (no prefix, or /${c.family === 4 ? 32 : 128})`);
  }
  return c;
}

function asCidrList(g: Given): Cidr[] {
  const list = typeof g.value === "string" ? [g.value] : g.value;
  if (!Array.isArray(list)) fail(g.where, g.value, 'a list of networks such as ["192.168.1.0/24"]');
  return list.map((v) => asCidr({ value: v, where: g.where }, undefined, "network"));
}

function asBoolOr(g: Given | undefined, fallback: boolean): boolean {
  return g ? asBool(g) : fallback;
}

/** `post_up` / `pre_down`: a list of commands, each a non-empty list of strings (argv, no shell). */
function asHooks(g: Given | undefined): HookCommand[] {
  if (!g) return [];
  const allowed = 'a list of commands, each a list of strings, e.g. [["nft", "-f", "/etc/vpn/up.nft"]]';
  if (!Array.isArray(g.value)) fail(g.where, g.value, allowed);
  return g.value.map((cmd) => {
    if (
      !Array.isArray(cmd) || cmd.length === 0 || !cmd.every((a) => typeof a === "string") || cmd[0] === ""
    ) {
      fail(g.where, JSON.stringify(cmd), allowed);
    }
    return cmd as string[];
  });
}

function asKeyInline(g: Given): Uint8Array {
  try {
    return keyFromBase64(asString(g), g.where);
  } catch (e) {
    if (e instanceof KeyError) throw new ConfigError(e.message);
    throw e;
  }
}

/** Resolve a path in a config file relative to the file's folder. */
function relativeTo(file: ConfigFile | undefined, g: Given): string {
  const p = asString(g);
  if (p === "") fail(g.where, p, "a file path");
  if (!file || p.startsWith("/")) return p;
  const dir = file.path.includes("/") ? file.path.slice(0, file.path.lastIndexOf("/") + 1) : "";
  return dir + p;
}

/** flag > VPN_KEY > config key/key_file > default key file. */
function resolveKey(flags: Flags, env: Record<string, string | undefined>, sec: Section): KeySpec {
  if (flags.key !== undefined && flags["key-file"] !== undefined) {
    throw new ConfigError("--key and --key-file: give only one of them");
  }
  const keyFlag = flag(flags, "key");
  if (keyFlag) return { kind: "inline", key: asKeyInline(keyFlag), source: "--key" };
  const keyFileFlag = flag(flags, "key-file");
  if (keyFileFlag) return { kind: "file", path: asString(keyFileFlag), source: "--key-file" };
  if (env.VPN_KEY !== undefined) {
    return { kind: "inline", key: asKeyInline({ value: env.VPN_KEY, where: "VPN_KEY" }), source: "VPN_KEY" };
  }
  const k = sec.get("key"), kf = sec.get("key_file");
  if (k && kf) throw new ConfigError(`${k.where}: give only one of key and key_file`);
  if (k) return { kind: "inline", key: asKeyInline(k), source: k.where };
  if (kf) return { kind: "file", path: relativeTo(sec.file, kf), source: kf.where };
  return { kind: "file", path: DEFAULTS.keyFile, source: "default" };
}

function resolveListen(flags: Flags, sec: Section): HostPort {
  const listenGiven = first(flag(flags, "listen"), sec.get("listen"));
  let listen = listenGiven ? asHostPort(listenGiven) : parseHostPort(DEFAULTS.listen) as HostPort;
  const portGiven = first(flag(flags, "port"), sec.get("port"));
  if (portGiven) {
    const raw = typeof portGiven.value === "number" ? String(portGiven.value) : portGiven.value;
    const port = typeof raw === "string" ? parsePort(raw) : "not a number";
    if (typeof port === "string") fail(portGiven.where, portGiven.value, "an integer from 1 to 65535");
    // --port overrides the port of a config listen address, but not of an explicit --listen.
    if (!(listenGiven?.where === "--listen" && portGiven.where !== "--port")) {
      listen = { hostname: listen.hostname, port };
    }
  }
  return listen;
}

function mtuLimits(hasIpv6: boolean): [number, number] {
  return [hasIpv6 ? MIN_MTU_IPV6 : MIN_MTU, MAX_MTU];
}

/** Every route must stay clear of the overlay subnets and of every other route: longest-prefix match
 * would otherwise silently pick one peer, and a peer could take another's traffic. */
function checkRoute(
  route: Cidr,
  where: string,
  overlay: { cidr: Cidr; name: string }[],
  taken: { cidr: Cidr; owner: string }[],
): void {
  for (const o of overlay) {
    if (cidrsOverlap(route, o.cidr)) {
      fail(
        where,
        formatCidr(route),
        `a network outside the overlay subnet ${formatCidr(o.cidr)} (${o.name})`,
      );
    }
  }
  for (const t of taken) {
    if (cidrsOverlap(route, t.cidr)) {
      fail(
        where,
        formatCidr(route),
        `a network that does not overlap ${t.owner}'s route ${formatCidr(t.cidr)}`,
      );
    }
  }
}

/**
 * Refuses an IPv6 address that another host address of the IPv4 subnet mirrors to (a client given that
 * IPv4 address would get the same IPv6 address): only `own`'s mirror is allowed. The network and
 * broadcast addresses are never given out, so their mirrors are free to use.
 */
function checkNotMirror(g: Given, a6: Uint8Array, net4: Cidr, net6: Cidr, own: Uint8Array): void {
  const host = mirroredHost(net6, a6, hostBits(net4));
  const base = ipv4ToNumber(networkOf(net4).address);
  if (host <= 0 || host === 2 ** hostBits(net4) - 1 || host === ipv4ToNumber(own) - base) return;
  fail(
    g.where,
    formatIp(a6),
    `an IPv6 address no other IPv4 address maps to (${formatIp(numberToIpv4(base + host))} in ` +
      `${formatCidr(networkOf(net4))} gets ${formatIp(a6)})`,
  );
}

function loadPeers(sec: Section, address: Cidr, address6: Cidr | undefined): PeerOptions[] {
  const raw = sec.data.peers;
  if (raw === undefined) return [];
  const where = sec.file ? sec.file.where("server", "peers") : "server.peers";
  if (!Array.isArray(raw)) fail(where, raw, "an array of tables ([[server.peers]])");
  const peers: PeerOptions[] = [];
  const overlay = [{ cidr: networkOf(address), name: "server.address" }];
  if (address6) overlay.push({ cidr: networkOf(address6), name: "server.address6" });
  const taken: { cidr: Cidr; owner: string }[] = [];
  raw.forEach((entry, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      fail(where, entry, "a table with name, address and optional key or key_file");
    }
    const p = new Section(sec.file, "server.peers", entry as Record<string, unknown>, i);
    p.checkKeys(PEER_KEYS);
    const nameG = p.get("name");
    if (!nameG) {
      throw new ConfigError(
        `${sec.file!.where("server.peers", "name", i)}: missing; every peer needs a name`,
      );
    }
    const name = asString(nameG);
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) {
      fail(nameG.where, name, "1 to 64 characters from A-Z a-z 0-9 _ . @ -");
    }
    const addrG = p.get("address");
    if (!addrG) {
      throw new ConfigError(
        `${sec.file!.where("server.peers", "address", i)}: missing; every peer needs an address`,
      );
    }
    const addr = asCidr(addrG, 4, "host");
    if (!cidrContains(address, addr.address)) {
      fail(addrG.where, formatCidr(addr), `an address inside the server's subnet ${formatCidr(address)}`);
    }
    if (ipEquals(addr.address, address.address)) {
      fail(addrG.where, formatCidr(addr), "an address other than the server's own");
    }
    const a6G = p.get("address6");
    let addr6: Cidr | undefined;
    if (a6G) {
      addr6 = asCidr(a6G, 6, "host");
      if (!address6 || !cidrContains(address6, addr6.address)) {
        fail(
          a6G.where,
          formatCidr(addr6),
          address6 ? `an address inside ${formatCidr(address6)}` : "nothing unless server.address6 is set",
        );
      }
      checkNotMirror(a6G, addr6.address, address, address6, addr.address);
      if (ipEquals(addr6.address, address6.address)) {
        fail(a6G.where, formatIp(addr6.address), "an address other than the server's own");
      }
    }
    const k = p.get("key"), kf = p.get("key_file");
    if (k && kf) throw new ConfigError(`${k.where}: give only one of key and key_file`);
    let key: Uint8Array | undefined;
    if (k) key = asKeyInline(k);
    if (kf) {
      try {
        key = readKeyFile(relativeTo(sec.file, kf));
      } catch (e) {
        if (e instanceof KeyError) throw new ConfigError(`${kf.where}: ${e.message}`);
        throw e;
      }
    }
    for (const other of peers) {
      if (other.name === name) fail(nameG.where, name, `a name no other peer has (peer ${i} repeats it)`);
      if (ipEquals(other.address.address, addr.address)) {
        fail(addrG.where, formatCidr(addr), `an address no other peer has (peer "${other.name}" has it)`);
      }
      if (addr6 && other.address6 && ipEquals(other.address6.address, addr6.address)) {
        fail(
          a6G!.where,
          formatIp(addr6.address),
          `an address no other peer has (peer "${other.name}" has it)`,
        );
      }
      if (key && other.key && ipEquals(key, other.key)) {
        fail((k ?? kf)!.where, "(a key)", `a key no other peer has (peer "${other.name}" has the same key)`);
      }
    }
    const routesG = p.get("routes");
    const routes = routesG ? asCidrList(routesG).map(networkOf) : [];
    for (const r of routes) {
      checkRoute(r, routesG!.where, overlay, taken);
      taken.push({ cidr: r, owner: `peer "${name}"` });
    }
    peers.push({ name, address: addr, address6: addr6, key, routes });
  });
  return peers;
}

/** The config file to read: `--config`, else DEFAULT_CONFIG_FILE when it exists, else none. */
export function configPath(flags: Flags, fallback = DEFAULT_CONFIG_FILE): string | undefined {
  if (typeof flags.config === "string") return flags.config;
  try {
    return Deno.statSync(fallback).isFile ? fallback : undefined;
  } catch {
    return undefined;
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

/**
 * Whether the shared key admits clients: `shared_key` when set; else not when peers are listed and no key
 * is configured anywhere (no flag, VPN_KEY, key or key_file, and no default key file yet).
 */
function resolveSharedKey(sec: Section, key: KeySpec, peers: readonly PeerOptions[]): boolean {
  const sharedG = sec.get("shared_key");
  if (sharedG) return asBool(sharedG);
  return !(key.kind === "file" && key.source === "default" && peers.length > 0 && !fileExists(key.path));
}

/** Where a config file holds a key inline (`server.key`, `client.key`, `server.peers[i].key`), if it does. */
function inlineKeyWhere(file: ConfigFile): string | undefined {
  const table = (v: unknown) => (typeof v === "object" && v !== null ? v as Record<string, unknown> : {});
  for (const name of ["server", "client"]) {
    if ("key" in table(file.data[name])) return file.where(name, "key");
  }
  const peers = table(file.data.server).peers;
  if (!Array.isArray(peers)) return undefined;
  const i = peers.findIndex((p) => "key" in table(p));
  return i < 0 ? undefined : file.where("server.peers", "key", i);
}

/** Read a config file; one that holds a key inline gets the key-file rules (mode, owner). */
function loadConfigFile(flags: Flags): ConfigFile | undefined {
  const path = configPath(flags);
  if (path === undefined) return undefined;
  const file = ConfigFile.load(path);
  const where = inlineKeyWhere(file);
  if (where === undefined) return file;
  try {
    checkPrivate(`${where} (a key inline in a config file)`, file.path, Deno.statSync(file.path));
  } catch (e) {
    if (e instanceof KeyError) throw new ConfigError(e.message);
    throw new ConfigError(`--config ${file.path}: ${(e as Error).message}`);
  }
  return file;
}

/** Resolve `vpn server` settings. `env` is the process environment (only VPN_KEY is read). */
export function loadServerOptions(flags: Flags, env: Record<string, string | undefined>): ServerOptions {
  return serverOptionsFrom(loadConfigFile(flags), flags, env);
}

/** Resolve `vpn server` settings from an already parsed config file (`vpn peer` checks edits with it). */
export function serverOptionsFrom(
  file: ConfigFile | undefined,
  flags: Flags,
  env: Record<string, string | undefined>,
): ServerOptions {
  const sec = sectionOf(file, "server");
  sec.checkKeys(SERVER_KEYS);
  const listen = resolveListen(flags, sec);
  const tunG = first(flag(flags, "tun"), sec.get("tun"));
  const tun = tunG ? asIfname(tunG, true) : DEFAULTS.tun;
  const addrG = first(flag(flags, "address"), sec.get("address"));
  const address = addrG ? asCidr(addrG, 4, "network") : parseCidr(DEFAULTS.serverAddress)!;
  if (addrG && address.prefixLength > 30) {
    fail(addrG.where, formatCidr(address), "a prefix of /30 or shorter (room for clients)");
  }
  const a6G = sec.get("address6");
  const address6 = a6G ? asCidr(a6G, 6, "network") : undefined;
  if (a6G && hostBits(address6!) < hostBits(address)) {
    // Fewer host bits than the IPv4 subnet: two clients' IPv6 addresses would coincide.
    fail(
      a6G.where,
      formatCidr(address6!),
      `a prefix of /${128 - hostBits(address)} or shorter (as many host bits as ${formatCidr(address)})`,
    );
  }
  if (a6G) checkNotMirror(a6G, address6!.address, address, address6!, address.address);
  const mtuG = first(flag(flags, "mtu"), sec.get("mtu"));
  const [lo, hi] = mtuLimits(address6 !== undefined);
  const mtu = mtuG ? asInt(mtuG, lo, hi) : DEFAULTS.mtu;
  const natG = first(flag(flags, "nat"), sec.get("nat"));
  const nat = natG ? asIfname(natG, false) : undefined;
  const fwdG = sec.get("forward");
  const forward = (fwdG ? asBool(fwdG) : false) || nat !== undefined;
  const kaG = sec.get("keepalive");
  const peers = loadPeers(sec, address, address6);
  const key = resolveKey(flags, env, sec);
  const peG = sec.get("public_endpoint");
  return {
    listen,
    tun,
    address,
    address6,
    mtu,
    key,
    sharedKey: resolveSharedKey(sec, key, peers),
    nat,
    forward,
    keepalive: kaG ? asInt(kaG, 0, 3600) : DEFAULTS.keepalive,
    logLevel: resolveLogLevel(flags, sec),
    logFormat: resolveChoice(flags, sec, "log-format", LOG_FORMATS, "log_format"),
    metrics: resolveMetrics(flags, sec),
    crypto: resolveChoice(flags, sec, "crypto", AEAD_CHOICES),
    udp: resolveChoice(flags, sec, "udp", UDP_CHOICES),
    offload: resolveChoice(flags, sec, "offload", OFFLOAD_CHOICES),
    peers,
    publicEndpoint: peG ? asHostPort(peG) : undefined,
    clientToClient: asBoolOr(sec.get("client_to_client"), true),
    postUp: asHooks(sec.get("post_up")),
    preDown: asHooks(sec.get("pre_down")),
    ...resolvePushedDns(sec),
    configFile: file?.path,
  };
}

function resolvePushedDns(sec: Section): { dns: string[]; dnsSearch: string[] } {
  const dnsG = sec.get("dns"), searchG = sec.get("dns_search");
  const dns = dnsG ? asList(dnsG, 'IP addresses such as ["10.0.0.1"]', asIpText) : [];
  const dnsSearch = searchG ? asList(searchG, 'domain names such as ["corp.example"]', asDomain) : [];
  try {
    encodeConfigMessage({ dns, search: dnsSearch });
  } catch {
    fail(
      searchG!.where,
      dnsSearch.join(","),
      `search domains of at most ${CONFIG_MAX_LENGTH - 150} characters together`,
    );
  }
  return { dns, dnsSearch };
}

function asList<T>(g: Given, allowed: string, one: (g: Given) => T): T[] {
  const list = g.value;
  if (!Array.isArray(list) || list.length > CONFIG_MAX_ENTRIES) {
    fail(g.where, list, `a list of at most ${CONFIG_MAX_ENTRIES} ${allowed}`);
  }
  return list.map((v) => one({ value: v, where: g.where }));
}

function asIpText(g: Given): string {
  const c = parseCidr(asString(g), "host");
  if (!c || c.prefixLength !== (c.family === 4 ? 32 : 128)) fail(g.where, g.value, "an IPv4 or IPv6 address");
  return formatIp(c.address);
}

function asDomain(g: Given): string {
  const s = asString(g);
  if (!isDomainName(s)) fail(g.where, s, "a domain name (letters, digits, - and ., at most 253 characters)");
  return s;
}

/** Resolve `vpn client` settings. */
export function loadClientOptions(flags: Flags, env: Record<string, string | undefined>): ClientOptions {
  const file = loadConfigFile(flags);
  const sec = sectionOf(file, "client");
  sec.checkKeys(CLIENT_KEYS);
  const peerFlags = flags.peer as string[] | string | undefined;
  const peerList = typeof peerFlags === "string" ? [peerFlags] : peerFlags ?? [];
  const peerG = peerList.length > 0 ? { value: peerList, where: "--peer" } : sec.get("peer");
  const peersG = sec.get("peers");
  if (peerG && peersG && peerG.where !== "--peer") {
    throw new ConfigError(`${peersG.where}: give only one of peer and peers`);
  }
  const serversG = peerG ?? peersG;
  if (!serversG) {
    throw new ConfigError("--peer: missing; give the server as HOST:PORT, e.g. --peer 192.0.2.1:51820");
  }
  const serverList = typeof serversG.value === "string" ? [serversG.value] : serversG.value;
  if (!Array.isArray(serverList) || serverList.length === 0 || serverList.length > 16) {
    fail(
      serversG.where,
      serversG.value,
      'HOST:PORT, or a list of 1 to 16 of them such as ["a:51820", "b:51820"]',
    );
  }
  const servers = serverList.map((v) => asHostPort({ value: v, where: serversG.where }));
  const dnsG = first(
    flags["no-dns"] === true ? { value: false, where: "--no-dns" } : undefined,
    sec.get("dns"),
  );
  const ksG = first(flag(flags, "kill-switch"), sec.get("kill_switch"));
  const tunG = first(flag(flags, "tun"), sec.get("tun"));
  const addrG = first(flag(flags, "address"), sec.get("address"));
  const routeFlags = flags.route as string[] | undefined;
  const routesG = routeFlags && routeFlags.length > 0
    ? { value: routeFlags, where: "--route" }
    : sec.get("routes");
  const drG = first(flag(flags, "default-route"), sec.get("default_route"));
  const kaG = first(flag(flags, "keepalive"), sec.get("keepalive"));
  const p4G = first(flag(flags, "accept-prefix4"), sec.get("accept_prefix4"));
  const p6G = first(flag(flags, "accept-prefix6"), sec.get("accept_prefix6"));
  const acceptFlags = flags["accept-network"] as string[] | undefined;
  const acceptG = acceptFlags && acceptFlags.length > 0
    ? { value: acceptFlags, where: "--accept-network" }
    : sec.get("accept_network");
  return {
    peer: servers[0],
    servers,
    dns: dnsG ? asBool(dnsG) : true,
    killSwitch: ksG ? asBool(ksG) : false,
    tun: tunG ? asIfname(tunG, true) : DEFAULTS.tun,
    address: addrG ? asCidr(addrG, undefined, "host-or-network") : undefined,
    key: resolveKey(flags, env, sec),
    routes: routesG ? asCidrList(routesG) : [],
    defaultRoute: drG ? asBool(drG) : false,
    forward: asBoolOr(sec.get("forward"), false),
    postUp: asHooks(sec.get("post_up")),
    preDown: asHooks(sec.get("pre_down")),
    keepalive: kaG ? asInt(kaG, 0, 3600) : undefined,
    acceptPrefix4: p4G ? asPrefixBounds(p4G, 32) : DEFAULT_PREFIX4,
    acceptPrefix6: p6G ? asPrefixBounds(p6G, 128) : DEFAULT_PREFIX6,
    acceptNetwork: acceptG ? asCidrList(acceptG).map(networkOf) : [],
    logLevel: resolveLogLevel(flags, sec),
    logFormat: resolveChoice(flags, sec, "log-format", LOG_FORMATS, "log_format"),
    metrics: resolveMetrics(flags, sec),
    crypto: resolveChoice(flags, sec, "crypto", AEAD_CHOICES),
    udp: resolveChoice(flags, sec, "udp", UDP_CHOICES),
    offload: resolveChoice(flags, sec, "offload", OFFLOAD_CHOICES),
    configFile: file?.path,
  };
}

function resolveLogLevel(flags: Flags, sec: Section): LogLevel {
  const g = first(flag(flags, "log-level"), sec.get("log_level"));
  return g ? asChoice(g, LOG_LEVELS) : DEFAULTS.logLevel;
}

function resolveChoice<T extends string>(
  flags: Flags,
  sec: Section,
  name: string,
  choices: readonly T[],
  key = name,
): T {
  const g = first(flag(flags, name), sec.get(key));
  return g ? asChoice(g, choices) : choices[0];
}

/** `--metrics` / `metrics`: `HOST:PORT`, or `PORT` / `:PORT` for 127.0.0.1 (never all interfaces unasked). */
function resolveMetrics(flags: Flags, sec: Section): HostPort | undefined {
  const g = first(flag(flags, "metrics"), sec.get("metrics"));
  if (!g) return undefined;
  const s = asString(g);
  const text = /^:?\d+$/.test(s) ? `127.0.0.1:${s.replace(/^:/, "")}` : s;
  const hp = parseHostPort(text);
  if (typeof hp === "string") fail(g.where, s, `HOST:PORT or PORT for 127.0.0.1 (${hp})`);
  return hp;
}
