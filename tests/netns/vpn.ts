/**
 * Runs the real `vpn` CLI (`deno run -A mod.ts server|client|status`) inside test hosts, for the
 * end-to-end tests. Each process gets a unique TUN name and the test's own `VPN_RUN_DIR`, and the key
 * travels in `VPN_KEY` (or a 0600 key file), never on the command line.
 *
 * ```ts
 * await using net = await createNetwork({ hosts: ["srv", "c1"] });
 * await using vpn = await VpnLab.create(net);
 * const srv = await vpn.server("srv");
 * const c1 = await vpn.client("c1", srv);
 * await net.host("c1").waitForPing(srv.overlay);
 * ```
 */
import { formatIp } from "../../src/net/ip_address.ts";
import { createNetwork, type Host, type HostProcess, type Network, type NetworkOptions } from "./hosts.ts";
import type { StatusReport } from "../../src/ops/status_report.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MOD = `${ROOT}mod.ts`;
const CONFIG = `${ROOT}deno.json`;

/** Default UDP port the tests' servers listen on (each host is its own namespace, so no clashes). */
export const VPN_PORT = 51820;

/** Raised when a vpn process does not come up or a status query fails. */
export class VpnTestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VpnTestError";
  }
}

/** A fresh random key, base64 (what `vpn genkey` prints). */
export function newKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

/** A server config (10.0.0.1/24) with two pinned peers: alice at 10.0.0.10 and bob at 10.0.0.11, each with its key file. */
export function aliceAndBobConfig(fileA: string, fileB: string): string {
  return `[server]
address = "10.0.0.1/24"

[[server.peers]]
name = "alice"
address = "10.0.0.10"
key_file = "${fileA}"

[[server.peers]]
name = "bob"
address = "10.0.0.11"
key_file = "${fileB}"
`;
}

/** The command line of `vpn ARGS...` run from source. */
export function vpnCmd(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--config", CONFIG, MOD, ...args];
}

/** A running `vpn server` or `vpn client`. */
export class VpnNode {
  /** The host it runs in. */
  readonly host: Host;
  /** Its TUN device name. */
  readonly tun: string;
  /** The process (output, waitForOutput, stop). */
  readonly proc: HostProcess;
  /** Server: its overlay IPv4 address; client: the address it was assigned (after "handshake complete"). */
  overlay = "";
  /** Client: the IPv6 overlay address it was assigned, if any. */
  overlay6 = "";
  readonly #lab: VpnLab;

  constructor(lab: VpnLab, host: Host, tun: string, proc: HostProcess) {
    this.#lab = lab;
    this.host = host;
    this.tun = tun;
    this.proc = proc;
  }

  /** Everything it logged so far. */
  output(): string {
    return this.proc.output();
  }

  /** `vpn status --json --tun TUN` with the lab's run dir, parsed. */
  async status(): Promise<StatusReport> {
    const r = await this.host.run(vpnCmd("status", "--json", "--tun", this.tun), {
      env: { VPN_RUN_DIR: this.#lab.runDir },
      timeoutMs: 15_000,
    });
    if (r.code !== 0) {
      throw new VpnTestError(`vpn status --tun ${this.tun} failed (code ${r.code}): ${r.stderr}${r.stdout}`);
    }
    return JSON.parse(r.stdout) as StatusReport;
  }

  /** True when its TUN device exists in its host. */
  async tunExists(): Promise<boolean> {
    return (await this.host.run(["ip", "link", "show", "dev", this.tun])).code === 0;
  }

  /** SIGTERM (then SIGKILL after `graceMs`); resolves with the exit status. */
  stop(graceMs = 5000): Promise<Deno.CommandStatus> {
    return this.proc.stop("SIGTERM", graceMs);
  }
}

/** Options of {@link VpnLab.server}. */
export interface ServerStart {
  /** Key (base64) passed in VPN_KEY; default the lab's shared key. Ignored when `keyFile` is given. */
  key?: string;
  /** Key file path (instead of VPN_KEY). */
  keyFile?: string;
  /** Listen address; default `0.0.0.0:PORT`. */
  listen?: string;
  /** Overlay address/prefix (default 10.0.0.1/24). */
  address?: string;
  /** A config file (TOML text) written to the lab dir and passed with --config. */
  config?: string;
  /** More flags. */
  args?: string[];
  /** Wait for this log line instead of "server started". */
  waitFor?: RegExp;
}

/** Options of {@link VpnLab.client}. */
export interface ClientStart {
  /** Key (base64) passed in VPN_KEY; default the lab's shared key. Ignored when `keyFile` is given. */
  key?: string;
  /** Key file path (instead of VPN_KEY). */
  keyFile?: string;
  /** Server as HOST:PORT; default the server node's underlay IPv4 address and {@link VPN_PORT}. */
  peer?: string;
  /** `--address` to ask for. */
  address?: string;
  /** More flags. */
  args?: string[];
  /** Wait for "handshake complete" (default true). */
  wait?: boolean;
  /** Reuse this TUN name (a restarted client). */
  tun?: string;
  /** Run the client under this command prefix (e.g. `unshare -m ...` for a mount namespace of its own). */
  wrap?: string[];
}

let serial = 0;

/** The vpn processes of one test: a shared key, a run dir, unique TUN names; disposing stops them all. */
export class VpnLab {
  /** The test network the processes run in. */
  readonly net: Network;
  /** The shared key most nodes use. */
  readonly key: string;
  /** Scratch dir (control sockets, config and key files); removed on dispose. */
  readonly dir: string;
  /** VPN_RUN_DIR of every process. */
  readonly runDir: string;
  /** VPN_STATE_DIR of every process (the persistent one: a test wipes runDir to simulate a reboot). */
  readonly stateDir: string;
  /** Every process started, in order. */
  readonly nodes: VpnNode[] = [];

  private constructor(net: Network, dir: string) {
    this.net = net;
    this.dir = dir;
    this.runDir = `${dir}/run`;
    this.stateDir = `${dir}/state`;
    this.key = newKey();
  }

  /** A lab on `net`, with its own temp dir. */
  static async create(net: Network): Promise<VpnLab> {
    const dir = await Deno.makeTempDir({ prefix: "vpn-e2e-" });
    await Deno.mkdir(`${dir}/run`, { mode: 0o700 });
    return new VpnLab(net, dir);
  }

  /** A TUN name unique in this test process. */
  tunName(role: string): string {
    return `${role}${Deno.pid % 1000}t${++serial}`.slice(0, 15);
  }

  /** Write `key` to a 0600 file in the lab dir; returns its path. */
  async writeKeyFile(name: string, key: string): Promise<string> {
    const path = `${this.dir}/${name}.key`;
    await Deno.writeTextFile(path, key + "\n", { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    return path;
  }

  #spawn(
    host: Host,
    tun: string,
    args: string[],
    key: string | undefined,
    keyFile: string | undefined,
    wrap: string[] = [],
  ) {
    const env: Record<string, string> = { VPN_RUN_DIR: this.runDir, VPN_STATE_DIR: this.stateDir };
    const keyArgs = keyFile ? ["--key-file", keyFile] : [];
    if (!keyFile) env.VPN_KEY = key ?? this.key;
    const proc = host.spawn([...wrap, ...vpnCmd(...args, "--tun", tun, ...keyArgs)], { env });
    const node = new VpnNode(this, host, tun, proc);
    this.nodes.push(node);
    return node;
  }

  /** Start `vpn server` on `hostName` and wait until it logs "server started". */
  async server(hostName: string, o: ServerStart = {}): Promise<VpnNode> {
    const host = this.net.host(hostName);
    const args = ["server", "--listen", o.listen ?? `0.0.0.0:${VPN_PORT}`];
    if (o.address) args.push("--address", o.address);
    if (o.config !== undefined) {
      const path = `${this.dir}/server-${++serial}.toml`;
      await Deno.writeTextFile(path, o.config, { mode: 0o600 }); // it may hold a key inline
      args.push("--config", path);
    }
    args.push(...(o.args ?? []));
    const node = this.#spawn(host, this.tunName("vs"), args, o.key, o.keyFile);
    const m = await node.proc.waitForOutput(/server started.* address=(\d+\.\d+\.\d+\.\d+)\//, 20_000);
    node.overlay = m[1];
    if (o.waitFor) await node.proc.waitForOutput(o.waitFor, 10_000);
    return node;
  }

  /** Start `vpn client` on `hostName` towards `server` and (by default) wait for "handshake complete". */
  async client(hostName: string, server: VpnNode | null, o: ClientStart = {}): Promise<VpnNode> {
    const host = this.net.host(hostName);
    const peer = o.peer ?? `${server!.host.address}:${VPN_PORT}`;
    const args = ["client", "--peer", peer];
    if (o.address) args.push("--address", o.address);
    args.push(...(o.args ?? []));
    const node = this.#spawn(host, o.tun ?? this.tunName("vc"), args, o.key, o.keyFile, o.wrap);
    if (o.wait !== false) await VpnLab.connected(node);
    return node;
  }

  /** Wait for a client's "handshake complete" and record its overlay addresses. */
  static async connected(node: VpnNode, timeoutMs = 20_000): Promise<void> {
    const m = await node.proc.waitForOutput(
      /handshake complete[^\n]* address=([0-9.]+)\/\d+[^\n]*\n/,
      timeoutMs,
    );
    node.overlay = m[1];
    node.overlay6 = m[0].match(/address6=([0-9a-f:]+)\//)?.[1] ?? "";
  }

  /** Output of every vpn process, for failure messages. */
  logs(): string {
    return this.nodes.map((n) => `=== ${n.host.name} ${n.tun}\n${n.output()}`).join("\n");
  }

  /** Stop every process (SIGTERM, then SIGKILL) and remove the lab dir. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop(2000)));
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** One UDP datagram found in a capture. */
export interface CapturedUdp {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** The UDP datagrams (IPv4 and IPv6, unfragmented) in a tcpdump pcap file, in capture order. */
export function pcapUdp(file: Uint8Array): CapturedUdp[] {
  if (file.length < 24) throw new VpnTestError(`not a pcap file (${file.length} bytes)`);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = dv.getUint32(0, true);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && dv.getUint32(0, false) !== 0xa1b2c3d4 && dv.getUint32(0, false) !== 0xa1b23c4d) {
    throw new VpnTestError(`not a pcap file (magic ${magic.toString(16)})`);
  }
  const linkType = dv.getUint32(20, le);
  // Bytes before the IP header: Ethernet 14, Linux cooked v1 16, v2 20, raw IP 0.
  const skip = ({ 1: 14, 113: 16, 276: 20, 101: 0, 228: 0, 229: 0 } as Record<number, number>)[linkType];
  if (skip === undefined) throw new VpnTestError(`pcap link type ${linkType} not supported`);
  const out: CapturedUdp[] = [];
  for (let off = 24; off + 16 <= file.length;) {
    const incl = dv.getUint32(off + 8, le);
    const pkt = file.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    const ip = pkt.subarray(skip);
    const v = ip[0] >> 4;
    let udp: Uint8Array, src: Uint8Array, dst: Uint8Array;
    if (v === 4 && ip[9] === 17 && (((ip[6] & 0x3f) << 8) | ip[7]) === 0) {
      const ihl = (ip[0] & 15) * 4;
      const total = (ip[2] << 8) | ip[3];
      udp = ip.subarray(ihl, Math.min(total, ip.length));
      src = ip.subarray(12, 16);
      dst = ip.subarray(16, 20);
    } else if (v === 6 && ip[6] === 17) {
      const plen = (ip[4] << 8) | ip[5];
      udp = ip.subarray(40, Math.min(40 + plen, ip.length));
      src = ip.subarray(8, 24);
      dst = ip.subarray(24, 40);
    } else continue;
    if (udp.length < 8) continue;
    out.push({
      src: formatIp(src),
      dst: formatIp(dst),
      srcPort: (udp[0] << 8) | udp[1],
      dstPort: (udp[2] << 8) | udp[3],
      payload: udp.slice(8, (udp[4] << 8) | udp[5]),
    });
  }
  return out;
}

/**
 * Build a network and a lab, run `fn`, and always tear both down; on failure the vpn processes' logs
 * are printed (deno test shows them with the failure).
 */
export async function withVpnLab(
  opts: NetworkOptions,
  fn: (lab: VpnLab, net: Network) => Promise<void>,
): Promise<void> {
  await using net = await createNetwork(opts);
  await using lab = await VpnLab.create(net);
  try {
    await fn(lab, net);
  } catch (e) {
    console.error(`--- vpn logs ---\n${lab.logs()}`);
    throw e;
  }
}

/**
 * A command prefix that runs a process in a mount namespace of its own where `file` is bind-mounted over
 * `target` (a file under /etc), so whatever it reads or writes there is `file` and the machine's own file is
 * never touched.
 */
export function ownEtcFile(file: string, target: "/etc/resolv.conf" | "/etc/hosts"): string[] {
  return [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    `mount --bind "$0" ${target} && exec "$@"`,
    file,
  ];
}

/** Limits `host`'s uplink to `rate` (tc syntax, e.g. "8mbit") with a token bucket, to make transfers last. */
export async function throttle(host: Host, rate: string): Promise<void> {
  const tbf = ["rate", rate, "burst", "32kb", "latency", "400ms"];
  await host.runOk(["tc", "qdisc", "add", "dev", host.iface, "root", "tbf", ...tbf]);
}

/** Resolves once `probe` returns true, polling every `everyMs`; false after `timeoutMs`. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
