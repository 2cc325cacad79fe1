/**
 * Server memory per client (as root): `deno run -A bench/memory_bench.ts [--clients N] [--echoes N]`.
 *
 * Builds two namespaces (`tests/netns/hosts.ts`, prefix "vm"), starts `vpn server` in one and, in the other,
 * this same file in its `--act-as-clients` role: ONE process that plays N clients over one UDP socket
 * (`createInitiation` + `Session`, the real handshake and data format), each sending a few ICMP echo
 * requests to the server's overlay address and checking the sealed echo replies. The server's RSS
 * (VmRSS from /proc/PID/status) is read idle, with 1 client and with N clients. Bounded: every wait has a
 * timeout, and the namespaces and processes are removed on the way out.
 */
import { createNetwork } from "../tests/netns/hosts.ts";
import { DATA_OVERHEAD, MSG_DATA, MSG_RESPONSE } from "../src/protocol/constants.ts";
import {
  createInitiation,
  InitiationClock,
  type PendingInitiation,
  randomIndex,
} from "../src/protocol/handshake.ts";
import { readKeyFile } from "../src/config/key_file.ts";
import { deriveHandshakeKey, type HandshakeKey } from "../src/protocol/keys.ts";
import { selectAeadBackend } from "../src/dataplane/aead_select.ts";
import { Session } from "../src/protocol/session.ts";
import { readU32 } from "../src/protocol/wire.ts";
import { receiveData } from "../tests/receive_data.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SERVER_OVERLAY = "10.9.0.1";
const PORT = 51820;
/** Handshakes in flight at once from the client process. */
const CONCURRENCY = 16;
const REPLY_TIMEOUT_MS = 3000;
/** Time between two of our initiations: about 14 a second, under the server's per-key limit. */
const INITIATION_SPACING_MS = 70;
const ICMP_BYTES = 64;

// ---------------------------------------------------------------- client role (inside the namespace)

/** One simulated client: its handshake in flight, then its session and address. */
interface SimClient {
  pending: PendingInitiation | null;
  session: Session | null;
  address: Uint8Array;
  replies: number;
  waiter: ((d: Uint8Array) => void) | null;
}

function ipv4(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map(Number));
}

function checksum(b: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i += 2) sum += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 ICMP echo request of ICMP_BYTES bytes, written at `buf[off..)`. */
function echoRequest(
  buf: Uint8Array,
  off: number,
  src: Uint8Array,
  dst: Uint8Array,
  id: number,
  seq: number,
) {
  const p = buf.subarray(off, off + ICMP_BYTES);
  p.fill(0);
  p[0] = 0x45;
  p[2] = ICMP_BYTES >> 8;
  p[3] = ICMP_BYTES & 0xff;
  p[8] = 64;
  p[9] = 1; // ICMP
  p.set(src, 12);
  p.set(dst, 16);
  const ipSum = checksum(p, 0, 20);
  p[10] = ipSum >> 8;
  p[11] = ipSum & 0xff;
  p[20] = 8; // echo request
  p[24] = id >> 8;
  p[25] = id & 0xff;
  p[26] = seq >> 8;
  p[27] = seq & 0xff;
  const icmpSum = checksum(p, 20, ICMP_BYTES);
  p[22] = icmpSum >> 8;
  p[23] = icmpSum & 0xff;
}

async function actAsClients(server: string, keyFile: string, count: number, echoes: number): Promise<void> {
  const key: HandshakeKey = await deriveHandshakeKey(readKeyFile(keyFile));
  const { backend } = await selectAeadBackend("auto");
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: server, port: PORT };
  const byIndex = new Map<number, SimClient>();
  const clock = new InitiationClock();
  const serverOverlay = ipv4(SERVER_OVERLAY);
  let closed = false;

  // One receive loop demultiplexes responses and data by our index.
  const receiving = (async () => {
    const buf = new Uint8Array(2048);
    while (!closed) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await conn.receive(buf);
      } catch {
        return;
      }
      const d = got[0];
      if (d.length < 5) continue;
      const index = d[0] === MSG_RESPONSE ? readU32(d, 6) : d[0] === MSG_DATA ? readU32(d, 1) : -1;
      const c = byIndex.get(index);
      if (c?.waiter) c.waiter(d.slice());
      else if (c && c.session && d[0] === MSG_DATA) {
        const copy = d.slice();
        const n = await receiveData(c.session, copy, copy.length, performance.now());
        if (n >= 28 && copy[13 + 20] === 0) c.replies++; // ICMP echo reply
      }
    }
  })();

  const waitFor = (c: SimClient, ms: number) =>
    new Promise<Uint8Array | null>((resolve) => {
      const t = setTimeout(() => {
        c.waiter = null;
        resolve(null);
      }, ms);
      c.waiter = (d) => {
        clearTimeout(t);
        c.waiter = null;
        resolve(d);
      };
    });

  async function one(i: number): Promise<boolean> {
    const c: SimClient = {
      pending: null,
      session: null,
      address: new Uint8Array(4),
      replies: 0,
      waiter: null,
    };
    let index = randomIndex();
    while (byIndex.has(index)) index = randomIndex();
    byIndex.set(index, c);
    for (let attempt = 0; attempt < 3 && c.session === null; attempt++) {
      await paced();
      const pending = await createInitiation(key, {
        senderIndex: index,
        requestedAddress: null,
        timestamp: clock.next(),
      });
      const reply = waitFor(c, REPLY_TIMEOUT_MS);
      await conn.send(pending.message, to);
      const d = await reply;
      if (d === null) continue;
      const r = await pending.consumeResponse(d);
      if (!r.ok || r.value.params.ipv4 === null) continue;
      c.address = ipv4(r.value.params.ipv4.address);
      c.session = await Session.create(backend, {
        localIndex: r.value.localIndex,
        remoteIndex: r.value.remoteIndex,
        isInitiator: true,
        keys: r.value.keys,
        now: performance.now(),
      });
    }
    if (c.session === null) return false;
    const buf = new Uint8Array(ICMP_BYTES + DATA_OVERHEAD);
    for (let seq = 1; seq <= echoes; seq++) {
      echoRequest(buf, 13, c.address, serverOverlay, i & 0xffff, seq);
      const len = await c.session.seal(buf, ICMP_BYTES, performance.now());
      await conn.send(buf.subarray(0, len), to);
    }
    return true;
  }

  // The server accepts 50 initiations a second per key (burst 5), and above 8 in flight asks each source for
  // a cookie: all these clients share one key and one address, so space their initiations instead.
  let nextInitiationAt = 0;
  async function paced(): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, nextInitiationAt);
    nextInitiationAt = at + INITIATION_SPACING_MS;
    if (at > now) await new Promise((r) => setTimeout(r, at - now));
  }

  // Announce progress on stdout, one JSON line per milestone; the orchestrator reads RSS in between.
  const report = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
  let ok = 0, next = 0;
  const stdin = Deno.stdin.readable.getReader();
  const waitGo = async () => {
    await stdin.read();
  };
  const runUpTo = async (target: number) => {
    const workers = Array.from({ length: Math.min(CONCURRENCY, target - next) }, async () => {
      while (next < target) if (await one(next++)) ok++;
    });
    await Promise.all(workers);
    await new Promise((r) => setTimeout(r, 500)); // let the last echo replies arrive
  };
  await runUpTo(1);
  report({ clients: ok, replies: [...byIndex.values()].reduce((s, c) => s + c.replies, 0) });
  await waitGo();
  await runUpTo(count);
  report({ clients: ok, replies: [...byIndex.values()].reduce((s, c) => s + c.replies, 0) });
  await waitGo();
  closed = true;
  conn.close();
  await receiving;
  for (const c of byIndex.values()) c.session?.dispose();
}

// ---------------------------------------------------------------- orchestrator

function rssKiB(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+)\s+kB/);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

async function settle(pid: number): Promise<number> {
  // RSS moves while V8 collects; take the last of a few samples 0.5 s apart.
  let r = 0;
  for (let i = 0; i < 4; i++) {
    await new Promise((res) => setTimeout(res, 500));
    r = rssKiB(pid);
  }
  return r;
}

async function orchestrate(count: number, echoes: number): Promise<number> {
  if (Deno.uid() !== 0) {
    console.error("memory_bench: needs root (network namespaces, TUN devices)");
    return 1;
  }
  const tmp = await Deno.makeTempDir({ prefix: "vpn-membench-" });
  try {
    const keyFile = `${tmp}/vpn.key`;
    const gen = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO}/mod.ts`, "genkey"],
      stdout: "piped",
    }).output();
    await Deno.writeTextFile(keyFile, new TextDecoder().decode(gen.stdout), { mode: 0o600 });
    await Deno.chmod(keyFile, 0o600);
    await using net = await createNetwork({ hosts: ["srv", "cli"], prefix: "vm" });
    const srv = net.host("srv"), cli = net.host("cli");
    const server = srv.spawn([
      Deno.execPath(),
      "run",
      "-A",
      `${REPO}/mod.ts`,
      "server",
      "--listen",
      `${srv.address}:${PORT}`,
      "--address",
      `${SERVER_OVERLAY}/22`,
      "--tun",
      "vpnm-s",
      "--key-file",
      keyFile,
    ], { env: { VPN_RUN_DIR: tmp } });
    await server.waitForOutput(/data path/, 15_000);
    const idle = await settle(server.pid);
    console.error(`memory_bench: server idle RSS ${idle} KiB`);
    const clients = cli.spawn([
      Deno.execPath(),
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--act-as-clients",
      srv.address,
      keyFile,
      String(count),
      String(echoes),
    ], { stdin: true });
    const writer = clients.stdin!.getWriter();
    const milestone = async (n: number) => {
      const re = new RegExp(`(\\{"clients":\\d+,"replies":\\d+\\}\\n[^]*){${n}}`);
      await clients.waitForOutput(re, 20_000 + count * 500);
      const lines = clients.stdout().trim().split("\n").filter((l) => l.startsWith("{"));
      return JSON.parse(lines[n - 1]) as { clients: number; replies: number };
    };
    const first = await milestone(1);
    const one = await settle(server.pid);
    console.error(`memory_bench: 1 client (${first.replies} echo replies): RSS ${one} KiB`);
    await writer.write(new TextEncoder().encode("go\n"));
    const all = await milestone(2);
    const many = await settle(server.pid);
    console.error(`memory_bench: ${all.clients} clients (${all.replies} echo replies): RSS ${many} KiB`);
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close().catch(() => {});
    await clients.exited;
    const perClient = all.clients > 1 ? (many - one) / (all.clients - 1) : NaN;
    const table = [
      "| server state | RSS (MiB) | echo replies |",
      "|---|---|---|",
      `| idle, no client | ${(idle / 1024).toFixed(1)} | - |`,
      `| 1 client | ${(one / 1024).toFixed(1)} | ${first.replies} of ${echoes} |`,
      `| ${all.clients} clients | ${(many / 1024).toFixed(1)} | ${all.replies} of ${all.clients * echoes} |`,
    ].join("\n");
    console.log(`${table}\n\nper extra client: ${perClient.toFixed(1)} KiB`);
    if (all.clients < count) {
      console.error(`memory_bench: only ${all.clients} of ${count} clients completed their handshake`);
      return 1;
    }
    return 0;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

function intArg(args: string[], flag: string, dflt: number): number {
  const i = args.indexOf(flag);
  if (i < 0) return dflt;
  const n = Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new RangeError(`${flag} needs an integer 1..1000`);
  return n;
}

if (import.meta.main) {
  const args = Deno.args;
  if (args[0] === "--act-as-clients") {
    await actAsClients(args[1], args[2], Number(args[3]), Number(args[4]));
    Deno.exit(0);
  }
  Deno.exit(await orchestrate(intArg(args, "--clients", 200), intArg(args, "--echoes", 3)));
}
