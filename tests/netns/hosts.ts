/**
 * Throw-away test "hosts": one network namespace per host, all plugged by veth pairs into a Linux bridge
 * that lives in its own "switch" namespace. Nothing is created in the test's own namespace, and
 * {@link Network.destroy} (or `await using`) removes every namespace and process again.
 *
 * Underlay addresses are test-only and exist only inside these namespaces: host i gets 10.203.0.(i+1)/24
 * and, with `ipv6`, fd0d:203::(i+1)/64.
 *
 * ```ts
 * await using net = await createNetwork({ hosts: ["srv", "c1"], ipv6: true });
 * const srv = net.host("srv");
 * const server = srv.spawn([denoBin(), "run", "-A", "mod.ts", "server", "--config", cfg]);
 * await server.waitForOutput(/listening/, 10_000);
 * assert(await net.host("c1").ping(srv.address));
 * ```
 * Set `VT_VERBOSE=1` to see every spawned process's output live on stderr.
 */
import { Capture, type CaptureTool } from "./capture.ts";
import { HostProcess, type SpawnOptions } from "./process.ts";
import {
  type BlastResult,
  tcpTransfer,
  type TransferOptions,
  type TransferResult,
  udpBlast,
} from "./traffic.ts";

export { HostProcess, HostProcessError, type SpawnOptions } from "./process.ts";
export { bytesContain, Capture, CaptureError, type CaptureTool, findTcpdump } from "./capture.ts";
export { type BlastResult, TrafficError, type TransferOptions, type TransferResult } from "./traffic.ts";

/** Raised when the test network cannot be built or a setup command fails. */
export class NetnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetnsError";
  }
}

/** Options for {@link createNetwork}. */
export interface NetworkOptions {
  /** Host names: lowercase letters and digits, starting with a letter, at most 12 characters. */
  hosts: string[];
  /** Also give every host an IPv6 underlay address. */
  ipv6?: boolean;
  /** Namespace name prefix (default "vt"); {@link cleanupStale} removes leftovers with the same prefix. */
  prefix?: string;
}

/** Result of {@link Host.run}. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** True when the command was killed because it outlived its timeout. */
  timedOut: boolean;
}

/** Options for {@link Host.run}. */
export interface RunOptions {
  /** Kill the command after this long (default 20 s). */
  timeoutMs?: number;
  /** Extra environment variables (merged into the test's own environment). */
  env?: Record<string, string>;
}

/** The underlay subnets; test-only and never routed outside the namespaces. */
export const UNDERLAY_V4 = "10.203.0.0/24";
/** IPv6 underlay subnet (with `ipv6: true`). */
export const UNDERLAY_V6 = "fd0d:203::/64";
/** Name of every host's underlay interface inside its namespace. */
export const HOST_IFACE = "eth0";

const DEFAULT_PREFIX = "vt";
const HOST_NAME = /^[a-z][a-z0-9]{0,11}$/;
const SETUP_TIMEOUT_MS = 10_000;
const MAX_HOSTS = 200;
const DAD_OFF = "for k in all default eth0; do echo 0 > /proc/sys/net/ipv6/conf/$k/accept_dad; done";

let counter = 0;
// Parallel test isolates share one pid, so each module instance adds its own tag to the names it makes.
const TAG = crypto.getRandomValues(new Uint8Array(2)).reduce(
  (s, b) => s + b.toString(16).padStart(2, "0"),
  "",
);
let staleCleaned = false;
const live = new Set<Network>();

/** Path of the running deno binary, for spawning `deno run` inside a host. */
export function denoBin(): string {
  return Deno.execPath();
}

/** Runs a command in the test's own namespace with a timeout; never throws for a non-zero exit. */
async function runLocal(args: string[], stdin?: string, timeoutMs = SETUP_TIMEOUT_MS): Promise<RunResult> {
  const child = new Deno.Command(args[0], {
    args: args.slice(1),
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, timeoutMs);
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin)).catch(() => {});
    await w.close().catch(() => {});
  }
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr), timedOut };
}

async function mustRun(args: string[], stdin?: string): Promise<string> {
  const r = await runLocal(args, stdin);
  if (r.code !== 0 || r.timedOut) {
    const what = stdin === undefined ? "" : `\n--- batch ---\n${stdin}`;
    throw new NetnsError(
      `${args.join(" ")} failed (code ${r.code}${r.timedOut ? ", timed out" : ""}): ` +
        `${r.stderr.trim()}${what}`,
    );
  }
  return r.stdout;
}

/** Names of all network namespaces on the machine. */
export async function listNamespaces(): Promise<string[]> {
  const out = await mustRun(["ip", "netns", "list"]);
  // Lines look like "name" or "name (id: 3)".
  return out.split("\n").map((l) => l.trim().split(" ")[0]).filter((n) => n !== "");
}

/** Kills every process left in namespace `ns` (whoever started it). */
async function killNamespacePids(ns: string): Promise<void> {
  // Repeat: a process may fork while we kill its parent.
  for (let round = 0; round < 5; round++) {
    const r = await runLocal(["ip", "netns", "pids", ns]);
    const pids = r.stdout.split("\n").map(Number).filter((p) => p > 0);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Deletes namespaces (after killing what runs in them); missing ones are ignored. */
async function deleteNamespaces(names: string[]): Promise<void> {
  if (names.length === 0) return;
  await Promise.all(names.map(killNamespacePids));
  await runLocal(["ip", "-force", "-batch", "-"], names.map((n) => `netns delete ${n}\n`).join(""));
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function pidAlive(pid: number): boolean {
  try {
    // A reused pid of an unrelated program does not keep a crashed run's namespaces alive.
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("deno");
  } catch {
    return false;
  }
}

/**
 * Removes namespaces left by a crashed earlier run of this suite: names `<prefix><pid>x<hex>-…` or
 * `<prefix><pid>x<hex>_sw` whose pid no longer runs deno, and their scratch directories. Returns the
 * namespace names removed.
 */
export async function cleanupStale(prefix = DEFAULT_PREFIX): Promise<string[]> {
  const re = new RegExp(`^${escapeRe(prefix)}(\\d+)x[0-9a-f]+[-_]`);
  const stale = (await listNamespaces()).filter((n) => {
    const m = n.match(re);
    return m !== null && Number(m[1]) !== Deno.pid && !pidAlive(Number(m[1]));
  });
  await deleteNamespaces(stale);
  // Scratch directories of crashed runs, named like their namespaces.
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  try {
    for await (const e of Deno.readDir(tmp)) {
      const m = e.name.match(re);
      if (e.isDirectory && m && Number(m[1]) !== Deno.pid && !pidAlive(Number(m[1]))) {
        await Deno.remove(`${tmp}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
  } catch {
    // No readable temp directory: nothing of ours can be there.
  }
  return stale;
}

/** One test host: a network namespace with `lo` and one underlay interface on the shared bridge. */
export class Host {
  /** Host name as given to {@link createNetwork}. */
  readonly name: string;
  /** Network namespace name (for `ip netns exec`). */
  readonly ns: string;
  /** Underlay IPv4 address (no prefix length). */
  readonly address: string;
  /** Underlay IPv6 address when the network was built with `ipv6`. */
  readonly address6: string | undefined;
  /** Underlay interface name inside the namespace. */
  readonly iface = HOST_IFACE;
  #net: Network;

  constructor(net: Network, name: string, ns: string, address: string, address6: string | undefined) {
    this.#net = net;
    this.name = name;
    this.ns = ns;
    this.address = address;
    this.address6 = address6;
  }

  /** Starts `cmd` in this host; it is tracked and killed when the network is destroyed. */
  spawn(cmd: string[], opts: SpawnOptions = {}): HostProcess {
    this.#net.assertAlive();
    const p = new HostProcess(this.ns, cmd, {
      logPrefix: `${this.name}:${cmd[0].split("/").pop()}`,
      ...opts,
    });
    this.#net.track(p);
    return p;
  }

  /** Runs `cmd` to completion in this host (killed after `timeoutMs`, default 20 s). */
  async run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const p = this.spawn(cmd, { env: opts.env });
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      p.exited.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), timeoutMs)),
    ]);
    clearTimeout(timer);
    if (!finished) timedOut = true;
    const status = await p.stop("SIGKILL", 0);
    return { code: status.code, stdout: p.stdout(), stderr: p.stderr(), timedOut };
  }

  /** Like {@link run} but throws {@link NetnsError} unless the command exits 0; returns stdout. */
  async runOk(cmd: string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.run(cmd, opts);
    if (r.code !== 0 || r.timedOut) {
      throw new NetnsError(
        `${this.name}: ${cmd.join(" ")} failed (code ${r.code}` +
          `${r.timedOut ? ", timed out" : ""})\n${r.stdout}${r.stderr}`,
      );
    }
    return r.stdout;
  }

  /** Pings `address` (`count` echoes, each waiting up to `timeoutS`); true when any reply came back. */
  async ping(address: string, opts: { count?: number; timeoutS?: number } = {}): Promise<boolean> {
    const count = opts.count ?? 1;
    const timeoutS = opts.timeoutS ?? 1;
    const r = await this.run([
      "ping",
      "-n",
      "-q",
      "-c",
      String(count),
      "-i",
      "0.2",
      "-W",
      String(timeoutS),
      address,
    ], {
      timeoutMs: (count * 0.2 + timeoutS) * 1000 + 2000,
    });
    return r.code === 0;
  }

  /** Pings until `address` answers; throws {@link NetnsError} if it does not within `timeoutMs`. */
  async waitForPing(address: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    do {
      if (await this.ping(address, { count: 1, timeoutS: 1 })) return;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    throw new NetnsError(`${this.name}: ${address} did not answer ping within ${timeoutMs} ms`);
  }

  /** Adds an address (CIDR, e.g. "10.203.0.50/24") to the underlay interface, e.g. for roaming tests. */
  async addAddress(cidr: string): Promise<void> {
    // nodad: an IPv6 address is usable at once instead of after duplicate address detection.
    const extra = cidr.includes(":") ? ["nodad"] : [];
    await mustRun(["ip", "-n", this.ns, "addr", "add", cidr, "dev", this.iface, ...extra]);
  }

  /** Removes an address (CIDR) from the underlay interface. */
  async delAddress(cidr: string): Promise<void> {
    await mustRun(["ip", "-n", this.ns, "addr", "del", cidr, "dev", this.iface]);
  }

  /**
   * Starts capturing packets on every interface of this host, or on `opts.iface` (tcpdump `filter` syntax;
   * the python fallback ignores it). The capture stops by itself after `maxMs`; `stop()` returns the bytes.
   */
  capture(filter = "", maxMs = 30_000, opts: { tool?: CaptureTool; iface?: string } = {}): Promise<Capture> {
    this.#net.assertAlive();
    const file = `${this.#net.tmpDir}/${this.name}-${++counter}.cap`;
    return this.#net.trackCapture(Capture.start(this, file, filter, maxMs, opts.tool, opts.iface));
  }

  /** Sends `bytes` random bytes over TCP from this host to `toAddress` on `to`; compare the checksums. */
  tcpTransfer(
    to: Host,
    toAddress: string,
    bytes: number,
    opts: TransferOptions = {},
  ): Promise<TransferResult> {
    return tcpTransfer(this, to, toAddress, bytes, opts);
  }

  /** Sends datagrams to `address`:`port`, bounded by `maxMs` and `maxCount` (fuzzing). */
  udpBlast(
    address: string,
    port: number,
    datagrams: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    maxMs: number,
    maxCount?: number,
  ): Promise<BlastResult> {
    return udpBlast(this, address, port, datagrams, maxMs, maxCount);
  }
}

/** A set of hosts on one bridge; dispose it (or call {@link Network.destroy}) to remove everything. */
export class Network {
  /** Namespace holding the bridge. */
  readonly switchNs: string;
  /** Hosts by name, in the order given. */
  readonly hosts: ReadonlyMap<string, Host>;
  /** Scratch directory (captures), removed on destroy. */
  readonly tmpDir: string;
  #processes = new Set<HostProcess>();
  #captures = new Set<Promise<Capture>>();
  #destroyed: Promise<void> | undefined;

  constructor(switchNs: string, hosts: Map<string, Host>, tmpDir: string) {
    this.switchNs = switchNs;
    this.hosts = hosts;
    this.tmpDir = tmpDir;
  }

  /** The host called `name`; throws if there is none. */
  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new NetnsError(`no host "${name}" (hosts: ${[...this.hosts.keys()].join(", ")})`);
    return h;
  }

  /** All namespace names of this network (hosts and switch). */
  namespaces(): string[] {
    return [...[...this.hosts.values()].map((h) => h.ns), this.switchNs];
  }

  /** Output of every process started so far, labelled; handy to print when a test fails. */
  logs(): string {
    return [...this.#processes].map((p) => `=== ${p.label} (pid ${p.pid})\n${p.output()}`).join("\n");
  }

  /** @internal Registers a process for cleanup. */
  track(p: HostProcess): void {
    this.#processes.add(p);
    // Forget finished processes so long tests do not accumulate them; keep output of the running ones.
    p.exited.then(() => {
      if (this.#processes.size > 64) this.#processes.delete(p);
    });
  }

  /** @internal Registers a capture for cleanup. */
  trackCapture(c: Promise<Capture>): Promise<Capture> {
    this.#captures.add(c);
    return c;
  }

  /** @internal Throws once the network is destroyed. */
  assertAlive(): void {
    if (this.#destroyed) throw new NetnsError(`network ${this.switchNs} is already destroyed`);
  }

  /** Kills every process and deletes every namespace and the scratch directory. Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= (async () => {
      live.delete(this);
      // Captures first, so tcpdump flushes normally instead of being killed mid-write.
      await Promise.allSettled([...this.#captures].map(async (c) => (await c).stop()));
      await Promise.allSettled([...this.#processes].map((p) => p.stop("SIGTERM", 500)));
      await deleteNamespaces(this.namespaces());
      await Deno.remove(this.tmpDir, { recursive: true }).catch(() => {});
    })();
    return this.#destroyed;
  }

  /** Same as {@link destroy}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }

  /** @internal Last-resort synchronous cleanup at process exit. */
  destroySync(): void {
    for (const p of this.#processes) p.kill("SIGKILL");
    for (const ns of this.namespaces()) {
      try {
        new Deno.Command("ip", { args: ["netns", "delete", ns], stdout: "null", stderr: "null" })
          .outputSync();
      } catch {
        // Best effort at exit.
      }
    }
    try {
      Deno.removeSync(this.tmpDir, { recursive: true });
    } catch {
      // Best effort at exit.
    }
  }
}

let unloadHooked = false;

/** One host of {@link createWiredNetwork}: its name and the addresses tests know it by. */
export interface HostSpec {
  name: string;
  /** Underlay IPv4 address (no prefix length) of its interface {@link HOST_IFACE}. */
  address: string;
  address6?: string;
}

/**
 * Namespaces for `specs` (plus an empty switch namespace), named, cleaned up and torn down exactly as by
 * {@link createNetwork}, with `lo` up in each; `wire` builds the links and addresses. On any failure
 * everything made so far is removed and the error is thrown.
 */
export async function createWiredNetwork(
  specs: HostSpec[],
  wire: (net: Network) => Promise<void>,
  prefix = DEFAULT_PREFIX,
): Promise<Network> {
  if (specs.length === 0 || specs.length > MAX_HOSTS) throw new NetnsError(`need 1..${MAX_HOSTS} hosts`);
  for (const { name } of specs) {
    if (!HOST_NAME.test(name)) throw new NetnsError(`bad host name "${name}" (want ${HOST_NAME})`);
  }
  if (new Set(specs.map((h) => h.name)).size !== specs.length) {
    throw new NetnsError(`duplicate host names: ${specs.map((h) => h.name).join(", ")}`);
  }
  if (!staleCleaned) {
    staleCleaned = true;
    await cleanupStale(prefix);
  }
  if (!unloadHooked) {
    unloadHooked = true;
    // A test that forgot to destroy its network still leaves nothing behind when deno exits normally.
    globalThis.addEventListener("unload", () => {
      for (const n of live) n.destroySync();
    });
  }

  const base = `${prefix}${Deno.pid}x${TAG}${++counter}`;
  const switchNs = `${base}_sw`;
  const hosts = new Map<string, Host>();
  const tmpDir = await Deno.makeTempDir({ prefix: `${base}-` });
  const net = new Network(switchNs, hosts, tmpDir);
  for (const h of specs) hosts.set(h.name, new Host(net, h.name, `${base}-${h.name}`, h.address, h.address6));
  live.add(net);
  try {
    await mustRun(["ip", "-batch", "-"], net.namespaces().map((ns) => `netns add ${ns}\n`).join(""));
    await Promise.all(net.namespaces().map((ns) => mustRun(["ip", "-n", ns, "link", "set", "lo", "up"])));
    await wire(net);
  } catch (e) {
    await net.destroy();
    throw e;
  }
  return net;
}

/** Builds the namespaces, bridge, veths and addresses; on any failure removes what it made and throws. */
export function createNetwork(opts: NetworkOptions): Promise<Network> {
  const specs = opts.hosts.map((name, i) => ({
    name,
    address: `10.203.0.${i + 1}`,
    address6: opts.ipv6 ? `fd0d:203::${(i + 1).toString(16)}` : undefined,
  }));
  return createWiredNetwork(specs, async (net) => {
    const hosts = [...net.hosts.values()];
    // Bridge with STP off and no forward delay, so ports forward at once; no multicast snooping, so
    // IPv6 neighbour discovery is simply flooded.
    const sw = [
      "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
      "link set br0 up",
    ];
    hosts.forEach((h, i) => {
      sw.push(`link add p${i} type veth peer name ${HOST_IFACE} netns ${h.ns}`);
      sw.push(`link set p${i} master br0`, `link set p${i} up`);
    });
    await mustRun(["ip", "-n", net.switchNs, "-batch", "-"], sw.join("\n") + "\n");
    await Promise.all(hosts.map(async (h) => {
      // No duplicate address detection anywhere in a host: addresses (link-local too) are usable at once.
      await mustRun(["ip", "netns", "exec", h.ns, "sh", "-c", DAD_OFF]);
      const cmds = [`addr add ${h.address}/24 dev ${HOST_IFACE}`];
      if (h.address6) cmds.push(`addr add ${h.address6}/64 dev ${HOST_IFACE} nodad`);
      cmds.push(`link set ${HOST_IFACE} up`);
      await mustRun(["ip", "-n", h.ns, "-batch", "-"], cmds.join("\n") + "\n");
    }));
  }, opts.prefix);
}
