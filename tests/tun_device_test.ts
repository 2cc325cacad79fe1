// TunDevice against the real kernel. Each case runs in a child `deno run` of this same file, started with
// `ip netns exec` inside a namespace the test creates and always deletes (a Deno process cannot switch
// namespace itself). In the child, VPN_FFI_TEST_CASE names the case; Deno.test is a no-op under `deno run`.
import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { TunDevice, TunError } from "../ffi/tun_device.ts";
import { getInterfaceInfo, setInterfaceAddress, setInterfaceMtu, setInterfaceUp } from "../ffi/interface.ts";
import { infoText, ip } from "./ffi_args.ts";
import { assertThrows } from "./assert.ts";
import { childCases, firstLine, nsExec, serveChildCase } from "./netns/child_case.ts";

const decoder = new TextDecoder();
const { withNetns, spawnCase, runCase, runInNetns } = childCases(import.meta.filename!, "vpnt");

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function checksum(buf: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (buf[i] << 8) | (i + 1 < end ? buf[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Answers one ping through the TUN; with `offload` every read and write has a virtio_net_hdr in front. */
async function pingThrough(offload: boolean): Promise<void> {
  const tun = TunDevice.open("vt0", { offload });
  strictEqual(tun.vnetHdr, offload);
  if (offload) ok(tun.offloads.includes("tso"), `offloads ${tun.offloads} (${tun.offloadRefusal})`);
  else deepStrictEqual(tun.offloads, []);
  // Offsets of the packet in the buffer: behind the 10-byte header with offloads.
  const at = offload ? 10 : 0;
  setInterfaceAddress("vt0", ip("10.201.0.1"), 24);
  setInterfaceUp("vt0");
  const pinger = new Deno.Command("ping", {
    args: ["-n", "-c1", "-W2", "10.201.0.2"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const whole = new Uint8Array(offload ? 65545 : 2048);
  const buf = whole.subarray(at);
  const deadline = Date.now() + 3000;
  let replied = false;
  while (!replied && Date.now() < deadline) {
    if (!await tun.waitReadable()) break;
    for (let r = tun.read(whole); r > 0; r = tun.read(whole)) {
      const n = r - at;
      if (offload) strictEqual(whole[1], 0, "a ping is no GSO packet");
      // Skip IPv6 noise (router solicitations, MLD) and anything but an ICMP echo request.
      if (buf[0] >> 4 !== 4 || buf[9] !== 1) continue;
      const ihl = (buf[0] & 0xf) * 4;
      if (buf[ihl] !== 8) continue;
      const dv = new DataView(buf.buffer, buf.byteOffset);
      strictEqual(dv.getUint16(2), n, "IPv4 total length equals the read length");
      strictEqual(checksum(buf, 0, ihl), 0, "valid IPv4 header checksum");
      strictEqual(checksum(buf, ihl, n), 0, "valid ICMP checksum");
      deepStrictEqual([...buf.subarray(12, 16)], [10, 201, 0, 1], "source");
      deepStrictEqual([...buf.subarray(16, 20)], [10, 201, 0, 2], "destination");
      // Craft the echo reply: swap addresses, type 0, fresh checksums.
      const src = buf.slice(12, 16);
      buf.copyWithin(12, 16, 20);
      buf.set(src, 16);
      buf[8] = 64;
      dv.setUint16(10, 0);
      dv.setUint16(10, checksum(buf, 0, ihl));
      buf[ihl] = 0;
      dv.setUint16(ihl + 2, 0);
      dv.setUint16(ihl + 2, checksum(buf, ihl, n));
      whole.fill(0, 0, at); // a plain packet with a complete checksum
      ok(tun.write(whole, r), "TUN accepted the reply");
      replied = true;
      break;
    }
  }
  ok(replied, "no ICMP echo request read from the TUN within 3 s");
  const out = await pinger.output();
  strictEqual(out.code, 0, `ping failed: ${decoder.decode(out.stdout)} ${decoder.decode(out.stderr)}`);
  match(decoder.decode(out.stdout), /1 received/);
  tun.close();
}

// ---- cases run in the child, inside the namespace ----

const CASES: Record<string, () => Promise<void> | void> = {
  readback() {
    const tun = TunDevice.open("vt0");
    strictEqual(tun.name, "vt0");
    setInterfaceAddress("vt0", ip("10.201.0.1"), 24);
    setInterfaceMtu("vt0", 1380);
    setInterfaceUp("vt0");
    const info = infoText(getInterfaceInfo("vt0"));
    deepStrictEqual(info, {
      index: Number(Deno.readTextFileSync("/sys/class/net/vt0/ifindex")),
      mtu: 1380,
      up: true,
      ipv4: { address: "10.201.0.1", netmask: "255.255.255.0" },
    });
    strictEqual(Deno.readTextFileSync("/sys/class/net/vt0/mtu").trim(), "1380");
    ok(Number(Deno.readTextFileSync("/sys/class/net/vt0/flags")) & 1, "IFF_UP in /sys flags");
    // IFF_TUN devices have no link-layer header: type 65534 (ARPHRD_NONE).
    strictEqual(Deno.readTextFileSync("/sys/class/net/vt0/type").trim(), "65534");
    tun.close();
  },

  kernelName() {
    const tun = TunDevice.open("");
    match(tun.name, /^tun\d+$/);
    ok(exists(`/sys/class/net/${tun.name}`));
    const tun2 = TunDevice.open("");
    ok(tun2.name !== tun.name, "a second kernel-chosen name differs");
    tun.close();
    tun2.close();
  },

  async ping() {
    await pingThrough(false);
  },

  async pingOffload() {
    await pingThrough(true);
  },

  async multiQueue() {
    const q0 = TunDevice.open("vt0", { multiQueue: true });
    const q1 = TunDevice.open("vt0", { multiQueue: true, attach: true });
    strictEqual(assertThrows(() => TunDevice.open("vt0", { multiQueue: true }), TunError).code, "EBUSY");
    const plain = assertThrows(() => TunDevice.open("vt0", { attach: true }), TunError);
    strictEqual(plain.code, "EINVAL", "a multi-queue device takes no single-queue open");
    setInterfaceAddress("vt0", ip("10.201.0.1"), 24);
    setInterfaceUp("vt0");
    // 32 flows (source ports) routed out of the TUN: the kernel picks a queue per flow hash, so both see some
    // (all 32 on one queue has odds of 2^-31).
    const socks = Array.from(
      { length: 32 },
      () => Deno.listenDatagram({ transport: "udp", hostname: "10.201.0.1", port: 0 }),
    );
    const perQueue = [0, 0];
    const buf = new Uint8Array(2048);
    try {
      for (const s of socks) {
        await s.send(new Uint8Array(8), { transport: "udp", hostname: "10.201.0.2", port: 9 });
      }
      const deadline = Date.now() + 2000;
      while (perQueue[0] + perQueue[1] < 32 && Date.now() < deadline) {
        [q0, q1].forEach((q, i) => {
          for (let n = q.read(buf); n > 0; n = q.read(buf)) {
            if (buf[0] >> 4 === 4 && buf[9] === 17) perQueue[i]++;
          }
        });
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      for (const s of socks) s.close();
    }
    strictEqual(perQueue[0] + perQueue[1], 32, `every datagram read once: ${perQueue}`);
    ok(perQueue[0] > 0 && perQueue[1] > 0, `flows spread over both queues: ${perQueue}`);
    q0.close();
    ok(exists("/sys/class/net/vt0"), "the device stays while a queue is open");
    q1.close();
    for (let i = 0; i < 50 && exists("/sys/class/net/vt0"); i++) await new Promise((r) => setTimeout(r, 10));
    ok(!exists("/sys/class/net/vt0"), "vt0 removed with its last queue");
  },

  writeWhenDown() {
    const tun = TunDevice.open("vt0");
    const pkt = new Uint8Array(28);
    pkt[0] = 0x45;
    strictEqual(tun.write(pkt, pkt.length), false, "a down TUN refuses writes (EIO)");
    strictEqual(tun.read(pkt), 0, "nothing pending reads as 0, not an error");
    tun.close();
  },

  async closeWakesReader() {
    const tun = TunDevice.open("vt0");
    const t0 = performance.now();
    const waiting = tun.waitReadable();
    await new Promise((r) => setTimeout(r, 30));
    tun.close();
    strictEqual(await waiting, false, "waitReadable resolves false after close");
    ok(performance.now() - t0 < 200, "close woke the poll before its 250 ms timeout");
    // The kernel removes a non-persistent TUN when its last fd goes.
    for (let i = 0; i < 50 && exists("/sys/class/net/vt0"); i++) await new Promise((r) => setTimeout(r, 10));
    ok(!exists("/sys/class/net/vt0"), "vt0 removed after close");
    strictEqual(tun.read(new Uint8Array(16)), 0);
    strictEqual(tun.write(new Uint8Array(16), 16), false);
    tun.close(); // idempotent
  },

  async hold() {
    const tun = TunDevice.open("vt0");
    console.log("ready");
    // Hold the device until the parent closes our stdin.
    for await (const _ of Deno.stdin.readable) { /* drain */ }
    tun.close();
  },

  busy() {
    const err = assertThrows(() => TunDevice.open("vt0"), TunError);
    strictEqual(err.code, "EBUSY");
    strictEqual(
      err.message,
      'cannot open TUN device "vt0": ioctl(TUNSETIFF) failed: EBUSY (Device or resource busy): ' +
        "an interface of that name already exists (in use by another process, or left persistent by someone " +
        "whose process could read the tunnel's traffic; vpn never adopts one): stop that process, or delete it " +
        "(ip link delete vt0), or choose another --tun",
    );
  },

  /** vt0 is a persistent TUN of uid 65534 (made by the parent): refused and left as it was. */
  foreign() {
    const err = assertThrows(() => TunDevice.open("vt0"), TunError);
    strictEqual(err.code, "EBUSY");
    match(err.message, /^cannot open TUN device "vt0": .*EBUSY.*delete it \(ip link delete vt0\)/);
    strictEqual(Deno.readTextFileSync("/sys/class/net/vt0/owner").trim(), "65534");
  },

  noPermission() {
    // The test must not pass vacuously: this process really lacks CAP_NET_ADMIN (bit 12).
    const capEff = Deno.readTextFileSync("/proc/self/status").match(/^CapEff:\s*([0-9a-f]+)$/m)![1];
    strictEqual(BigInt(`0x${capEff}`) & (1n << 12n), 0n, "CAP_NET_ADMIN was dropped");
    const err = assertThrows(() => TunDevice.open("vt9"), TunError);
    strictEqual(err.code, "EPERM");
    strictEqual(
      err.message,
      'cannot open TUN device "vt9": ioctl(TUNSETIFF) failed: EPERM (Operation not permitted): ' +
        "creating a TUN device needs root or CAP_NET_ADMIN: run as root, or grant the capability " +
        "(e.g. `setcap cap_net_admin+ep` on the compiled binary)",
    );
    ok(!exists("/sys/class/net/vt9"));
  },
};

// ---- tests (parent) ----

Deno.test("TunDevice: chosen name; address, netmask, MTU and UP as the kernel reports them", async () => {
  await withNetns(async (ns) => {
    await runCase(ns, "readback");
    // Cross-check with iproute2 as an independent reader (inspection only).
    const child = spawnCase(ns, "hold", { stdin: true });
    try {
      strictEqual(await firstLine(child, 5000), "ready");
      await nsExec(ns, "ip", "link", "show", "vt0");
    } finally {
      await child.stdin.close();
      await child.output();
    }
  });
});

Deno.test("TunDevice: kernel-chosen names are tunN and distinct", async () => {
  await runInNetns("kernelName");
});

Deno.test("TunDevice: ping into the TUN subnet is read as ICMP and answered through write", async () => {
  await runInNetns("ping");
});

Deno.test("TunDevice: with offloads (IFF_VNET_HDR, TSO) a ping is read and answered behind virtio headers", async () => {
  await runInNetns("pingOffload");
});

Deno.test("TunDevice: IFF_MULTI_QUEUE adds a queue per open, flows spread over the queues", async () => {
  await runInNetns("multiQueue");
});

Deno.test("TunDevice: write on a down device returns false; empty read returns 0", async () => {
  await runInNetns("writeWhenDown");
});

Deno.test("TunDevice: close wakes a pending waitReadable and removes the device", async () => {
  await runInNetns("closeWakesReader");
});

Deno.test("TunDevice: name in use by another process gives EBUSY with its hint", async () => {
  await withNetns(async (ns) => {
    const holder = spawnCase(ns, "hold", { stdin: true });
    try {
      strictEqual(await firstLine(holder, 5000), "ready");
      await runCase(ns, "busy");
    } finally {
      await holder.stdin.close();
      const out = await holder.output();
      strictEqual(out.code, 0, decoder.decode(out.stderr));
    }
  });
});

Deno.test("TunDevice: a persistent TUN of another user is refused (IFF_TUN_EXCL), not adopted", async () => {
  await withNetns(async (ns) => {
    await nsExec(ns, "ip", "tuntap", "add", "dev", "vt0", "mode", "tun", "user", "65534");
    await runCase(ns, "foreign");
    strictEqual((await nsExec(ns, "cat", "/sys/class/net/vt0/owner")).trim(), "65534", "the device changed");
    // Once its owner deletes it, the name opens.
    await nsExec(ns, "ip", "link", "delete", "vt0");
    await runCase(ns, "readback");
  });
});

Deno.test("TunDevice: after a SIGKILL the same name opens again (the kernel deletes a TUN with its last fd)", async () => {
  await withNetns(async (ns) => {
    const holder = spawnCase(ns, "hold", { stdin: true });
    strictEqual(await firstLine(holder, 5000), "ready");
    holder.kill("SIGKILL");
    await holder.output();
    await runCase(ns, "readback");
  });
});

Deno.test("TunDevice: without CAP_NET_ADMIN the error says to run as root or with the capability", async () => {
  await runInNetns("noPermission", {
    wrap: ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--"],
  });
});

Deno.test("TunDevice: a name longer than 15 bytes is refused before any syscall", () => {
  const e = assertThrows(() => TunDevice.open("a-name-too-long-x"), TunError);
  strictEqual(e.code, "EINVAL");
  strictEqual(
    e.message,
    'cannot open TUN device "a-name-too-long-x": the interface name is 17 bytes long; Linux allows at most 15',
  );
  // Multi-byte characters count as bytes: 8 x "é" = 16 bytes.
  throws(() => TunDevice.open("éééééééé"), /16 bytes long/);
  throws(() => TunDevice.open("bad/name"), /contains/);
});

await serveChildCase(CASES);
