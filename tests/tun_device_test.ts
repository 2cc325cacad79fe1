// TunDevice against the real kernel. Each case runs in a child `deno run` of this same file, started with
// `ip netns exec` inside a namespace the test creates and always deletes (a Deno process cannot switch
// namespace itself). In the child, VPN_FFI_TEST_CASE names the case; Deno.test is a no-op under `deno run`.
import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { TunDevice, TunError } from "../ffi/tun_device.ts";
import { getInterfaceInfo, setInterfaceAddress, setInterfaceMtu, setInterfaceUp } from "../ffi/interface.ts";

const CASE_ENV = "VPN_FFI_TEST_CASE";
const decoder = new TextDecoder();
let nsCounter = 0;

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** Run `body` with a fresh network namespace that is deleted afterwards, whatever happens. */
async function withNetns(body: (ns: string) => Promise<void>): Promise<void> {
  const ns = `vpnt${Deno.pid}_${nsCounter++}`;
  await sh("ip", ["netns", "add", ns]);
  try {
    await body(ns);
  } finally {
    await sh("ip", ["netns", "del", ns]);
  }
}

/** Start the case `name` of this file inside `ns` (optionally behind a wrapper such as setpriv). */
function spawnCase(ns: string, name: string, wrap: string[] = [], stdin = false): Deno.ChildProcess {
  return new Deno.Command("ip", {
    args: ["netns", "exec", ns, ...wrap, Deno.execPath(), "run", "-A", import.meta.filename!],
    env: { [CASE_ENV]: name },
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Run a case to completion; throws with its stderr unless it exits 0. Returns its stdout. */
async function runCase(ns: string, name: string, wrap: string[] = []): Promise<string> {
  const out = await spawnCase(ns, name, wrap).output();
  const stderr = decoder.decode(out.stderr);
  if (!out.success) throw new Error(`case ${name} exited ${out.code}:\n${stderr}`);
  return decoder.decode(out.stdout);
}

/** Read the first line a child prints (its "ready" signal), with a deadline. */
async function firstLine(child: Deno.ChildProcess, timeoutMs: number): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  const timer = setTimeout(() => reader.cancel(), timeoutMs);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return text.split("\n")[0];
}

/** The error `fn` throws; fails the test if it returns normally. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    ok(e instanceof Error);
    return e;
  }
  throw new Error("expected an error, but the call succeeded");
}

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

// ---- cases run in the child, inside the namespace ----

const CASES: Record<string, () => Promise<void> | void> = {
  readback() {
    const tun = TunDevice.open("vt0");
    strictEqual(tun.name, "vt0");
    setInterfaceAddress("vt0", "10.201.0.1", 24);
    setInterfaceMtu("vt0", 1380);
    setInterfaceUp("vt0");
    const info = getInterfaceInfo("vt0");
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
    const tun = TunDevice.open("vt0");
    setInterfaceAddress("vt0", "10.201.0.1", 24);
    setInterfaceUp("vt0");
    const pinger = new Deno.Command("ping", {
      args: ["-n", "-c1", "-W2", "10.201.0.2"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const buf = new Uint8Array(2048);
    const deadline = Date.now() + 3000;
    let replied = false;
    while (!replied && Date.now() < deadline) {
      if (!await tun.waitReadable()) break;
      for (let n = tun.read(buf); n > 0; n = tun.read(buf)) {
        // Skip IPv6 noise (router solicitations, MLD) and anything but an ICMP echo request.
        if (buf[0] >> 4 !== 4 || buf[9] !== 1) continue;
        const ihl = (buf[0] & 0xf) * 4;
        if (buf[ihl] !== 8) continue;
        const dv = new DataView(buf.buffer);
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
        ok(tun.write(buf, n), "TUN accepted the reply");
        replied = true;
        break;
      }
    }
    ok(replied, "no ICMP echo request read from the TUN within 3 s");
    const out = await pinger.output();
    strictEqual(out.code, 0, `ping failed: ${decoder.decode(out.stdout)} ${decoder.decode(out.stderr)}`);
    match(decoder.decode(out.stdout), /1 received/);
    tun.close();
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
    const err = thrown(() => TunDevice.open("vt0"));
    ok(err instanceof TunError);
    strictEqual(err.code, "EBUSY");
    strictEqual(
      err.message,
      'cannot open TUN device "vt0": ioctl(TUNSETIFF) failed: EBUSY (Device or resource busy): ' +
        "an interface of that name is already in use by another process; choose another name or stop it",
    );
  },

  noPermission() {
    // The test must not pass vacuously: this process really lacks CAP_NET_ADMIN (bit 12).
    const capEff = Deno.readTextFileSync("/proc/self/status").match(/^CapEff:\s*([0-9a-f]+)$/m)![1];
    strictEqual(BigInt(`0x${capEff}`) & (1n << 12n), 0n, "CAP_NET_ADMIN was dropped");
    const err = thrown(() => TunDevice.open("vt9"));
    ok(err instanceof TunError, String(err));
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
    const child = spawnCase(ns, "hold", [], true);
    try {
      strictEqual(await firstLine(child, 5000), "ready");
      await sh("ip", ["netns", "exec", ns, "ip", "link", "show", "vt0"]);
    } finally {
      await child.stdin.close();
      await child.output();
    }
  });
});

Deno.test("TunDevice: kernel-chosen names are tunN and distinct", async () => {
  await withNetns((ns) => runCase(ns, "kernelName").then(() => {}));
});

Deno.test("TunDevice: ping into the TUN subnet is read as ICMP and answered through write", async () => {
  await withNetns((ns) => runCase(ns, "ping").then(() => {}));
});

Deno.test("TunDevice: write on a down device returns false; empty read returns 0", async () => {
  await withNetns((ns) => runCase(ns, "writeWhenDown").then(() => {}));
});

Deno.test("TunDevice: close wakes a pending waitReadable and removes the device", async () => {
  await withNetns((ns) => runCase(ns, "closeWakesReader").then(() => {}));
});

Deno.test("TunDevice: name in use by another process gives EBUSY with its hint", async () => {
  await withNetns(async (ns) => {
    const holder = spawnCase(ns, "hold", [], true);
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

Deno.test("TunDevice: without CAP_NET_ADMIN the error says to run as root or with the capability", async () => {
  await withNetns(async (ns) => {
    await runCase(ns, "noPermission", ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--"]);
  });
});

Deno.test("TunDevice: a name longer than 15 bytes is refused before any syscall", () => {
  const e = thrown(() => TunDevice.open("a-name-too-long-x"));
  ok(e instanceof TunError);
  strictEqual(e.code, "EINVAL");
  strictEqual(
    e.message,
    'cannot open TUN device "a-name-too-long-x": the interface name is 17 bytes long; Linux allows at most 15',
  );
  // Multi-byte characters count as bytes: 8 x "é" = 16 bytes.
  throws(() => TunDevice.open("éééééééé"), /16 bytes long/);
  throws(() => TunDevice.open("bad/name"), /contains/);
});

const childCase = Deno.env.get(CASE_ENV);
if (childCase !== undefined) {
  const body = CASES[childCase];
  if (!body) throw new Error(`unknown case ${childCase}`);
  await body();
  Deno.exit(0);
}
