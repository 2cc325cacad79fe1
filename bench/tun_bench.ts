// TUN data-path benchmark: packets per second through TunDevice.write and TunDevice.read (poll + drain)
// for 64- and 1400-byte IPv4/UDP packets, in a network namespace this script creates and always deletes.
//
//   deno run -A bench/tun_bench.ts [seconds per case, default 3]      (as root)
//
// Write path: crafted packets 10.210.0.2 -> 10.210.0.1:9999, where a UDP socket is bound and never read
// (the kernel takes each through IP and UDP, then drops it on the full receive buffer; /proc/net/snmp
// confirms they arrived). Read path: a child process in the namespace floods 10.210.0.2:7000, routed out of
// the TUN, with sendmmsg (64 per call); the reader waits with one async poll per wake-up and drains with
// synchronous reads. Every loop is bounded in time and count.
import { TunDevice } from "../ffi/tun_device.ts";
import { setInterfaceAddress, setInterfaceMtu, setInterfaceUp } from "../ffi/interface.ts";
import { type BatchMemory, UdpSocket } from "../ffi/udp_socket.ts";
import { requireIp } from "../src/net/ip_address.ts";

const ROLE_ENV = "VPN_TUN_BENCH_ROLE";
const SIZES = [64, 1400];
const WARMUP_MS = 500;
const MAX_PACKETS_PER_SECOND = 5_000_000; // count bound for every loop
const decoder = new TextDecoder();

interface Row {
  path: string;
  size: number;
  packets: number;
  ms: number;
  note: string;
}

function ipv4Udp(size: number, src: number[], dst: number[], sport: number, dport: number): Uint8Array {
  const p = new Uint8Array(size);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, size);
  p[8] = 64;
  p[9] = 17;
  p.set(src, 12);
  p.set(dst, 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += v.getUint16(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  v.setUint16(10, ~s & 0xffff);
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  v.setUint16(24, size - 20); // UDP checksum 0 = none
  return p;
}

function udpCounters(): Record<string, number> {
  const lines = Deno.readTextFileSync("/proc/net/snmp").split("\n").filter((l) => l.startsWith("Udp:"));
  const keys = lines[0].split(/\s+/), values = lines[1].split(/\s+/).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, values[i]]));
}

function writePath(tun: TunDevice, size: number, seconds: number): Row {
  const sink = Deno.listenDatagram({ transport: "udp", hostname: "10.210.0.1", port: 9999 });
  const pkt = ipv4Udp(size, [10, 210, 0, 2], [10, 210, 0, 1], 5555, 9999);
  const before = udpCounters();
  let ok = 0, refused = 0;
  const limit = seconds * MAX_PACKETS_PER_SECOND;
  const t0 = performance.now(), end = t0 + seconds * 1000;
  while (performance.now() < end && ok + refused < limit) {
    for (let i = 0; i < 256; i++) {
      if (tun.write(pkt, size)) ok++;
      else refused++;
    }
  }
  const ms = performance.now() - t0;
  const after = udpCounters();
  sink.close();
  const arrived = after.InDatagrams - before.InDatagrams + after.RcvbufErrors - before.RcvbufErrors;
  return { path: "write", size, packets: ok, ms, note: `${refused} refused, ${arrived} reached UDP` };
}

async function readPath(tun: TunDevice, size: number, seconds: number): Promise<Row> {
  const sender = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, String(size), String(seconds + 1)],
    env: { [ROLE_ENV]: "sender" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const buf = new Uint8Array(2048);
  let packets = 0, bytes = 0, wakeups = 0, counting = false, tStart = 0;
  const t0 = performance.now(), startAt = t0 + WARMUP_MS, end = startAt + seconds * 1000;
  const limit = seconds * MAX_PACKETS_PER_SECOND;
  let more = false;
  let offered = "?";
  try {
    while (packets < limit) {
      const now = performance.now();
      if (now >= end) break;
      if (!counting && now >= startAt) {
        counting = true;
        packets = bytes = wakeups = 0;
        tStart = now;
      }
      if (!more) {
        await tun.waitReadable();
        wakeups++;
      }
      let k = 0, n = 0;
      while (k < 256 && (n = tun.read(buf)) > 0) {
        k++;
        bytes += n;
      }
      packets += k;
      more = k === 256; // still pending: read on without another poll
    }
  } finally {
    const out = await sender.output();
    offered = decoder.decode(out.stdout).trim();
  }
  const ms = performance.now() - tStart;
  const perWake = (packets / Math.max(1, wakeups)).toFixed(0);
  return { path: "read", size, packets, ms, note: `${perWake} pkts/wake-up, sender offered ${offered} pps` };
}

/** Inside the namespace: set up the TUN, run every case, print the table. */
async function runAll(seconds: number) {
  const tun = TunDevice.open("vb0");
  try {
    setInterfaceAddress("vb0", requireIp("10.210.0.1"), 24);
    setInterfaceMtu("vb0", 1500);
    setInterfaceUp("vb0");
    setInterfaceUp("lo");
    const rows: Row[] = [];
    for (const size of SIZES) rows.push(writePath(tun, size, seconds));
    for (const size of SIZES) rows.push(await readPath(tun, size, seconds));
    console.log(`TUN ${tun.name}, ${seconds} s per case (read path after ${WARMUP_MS} ms warm-up)\n`);
    console.log("| path  | size | packets/s | Gbit/s | notes |");
    console.log("|-------|------|-----------|--------|-------|");
    for (const r of rows) {
      const pps = r.packets / r.ms * 1000;
      const gbps = (pps * r.size * 8 / 1e9).toFixed(2);
      console.log(
        `| ${r.path.padEnd(5)} | ${String(r.size).padStart(4)} | ${
          Math.round(pps).toLocaleString("en-US").padStart(9)
        } | ${gbps.padStart(6)} | ${r.note} |`,
      );
    }
  } finally {
    tun.close();
  }
}

/** Flood 10.210.0.2:7000 with datagrams making `size`-byte IP packets, 64 per sendmmsg, for `seconds`. */
function sender(size: number, seconds: number) {
  const bind = new Uint8Array(18);
  bind[10] = bind[11] = 0xff; // 0.0.0.0:0 as v4-mapped
  const sock = UdpSocket.open(4, bind);
  const capacity = 64, slotSize = size - 28;
  const batch: BatchMemory = {
    capacity,
    slotSize,
    data: new Uint8Array(capacity * slotSize),
    lens: new Int32Array(capacity).fill(slotSize),
    endpointData: new Uint8Array(capacity * 18),
  };
  for (let i = 0; i < capacity; i++) {
    batch.endpointData.set(
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 210, 0, 2, 7000 >> 8, 7000 & 0xff],
      i * 18,
    );
  }
  let sent = 0;
  const limit = seconds * MAX_PACKETS_PER_SECOND;
  const t0 = performance.now(), end = t0 + seconds * 1000;
  while (performance.now() < end && sent < limit) sent += sock.sendBatch(batch, capacity);
  sock.close();
  console.log(Math.round(sent / (performance.now() - t0) * 1000).toLocaleString("en-US"));
}

const role = Deno.env.get(ROLE_ENV);
if (role === "run") {
  await runAll(Number(Deno.args[0]));
} else if (role === "sender") {
  sender(Number(Deno.args[0]), Number(Deno.args[1]));
} else {
  const seconds = Number(Deno.args[0] ?? 3);
  if (!(seconds > 0 && seconds <= 30)) throw new Error("seconds per case must be in (0, 30]");
  const ns = `vpnbench${Deno.pid}`;
  const ip = (...args: string[]) => new Deno.Command("ip", { args, stderr: "piped" }).outputSync();
  const add = ip("netns", "add", ns);
  if (!add.success) throw new Error(`ip netns add failed (run as root): ${decoder.decode(add.stderr)}`);
  try {
    const status = await new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", import.meta.filename!, String(seconds)],
      env: { [ROLE_ENV]: "run" },
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    if (!status.success) Deno.exitCode = 1;
  } finally {
    ip("netns", "del", ns);
  }
}
