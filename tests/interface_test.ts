// ffi/interface.ts against the real kernel, each case in a child `deno run` of this file under
// `ip netns exec` in a namespace the test creates and always deletes. Results are read back from
// /proc/net/* and /sys (and iproute2's JSON output for inspection only).
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { TunDevice } from "../ffi/tun_device.ts";
import {
  addRoute,
  defaultRouteV4,
  deleteRoute,
  getInterfaceInfo,
  InterfaceError,
  interfaceIndex,
  setInterfaceAddress,
  setInterfaceMtu,
  setInterfaceUp,
} from "../ffi/interface.ts";
import { infoText, ip, route } from "./ffi_args.ts";
import { formatIp } from "../src/net/ip_address.ts";
import { assertThrows } from "./assert.ts";
import { childCases, serveChildCase } from "./netns/child_case.ts";

const decoder = new TextDecoder();
const { runInNetns } = childCases(import.meta.filename!, "vpni");

/** IPv4 routes as "dst/len dev [via gw]" from /proc/net/route (addresses are little-endian hex there). */
function routesV4(): string[] {
  const hex = (h: string) => {
    const n = parseInt(h, 16);
    return formatIp(new Uint8Array([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]));
  };
  return Deno.readTextFileSync("/proc/net/route").trim().split("\n").slice(1).map((line) => {
    const f = line.trim().split(/\s+/);
    const len = parseInt(f[7], 16).toString(2).replaceAll("0", "").length;
    const gw = f[2] === "00000000" ? "" : ` via ${hex(f[2])}`;
    return `${hex(f[1])}/${len} ${f[0]}${gw}`;
  });
}

/** IPv6 routes as "hex32/len dev" from /proc/net/ipv6_route. */
function routesV6(): string[] {
  return Deno.readTextFileSync("/proc/net/ipv6_route").trim().split("\n").map((line) => {
    const f = line.trim().split(/\s+/);
    return `${f[0]}/${parseInt(f[1], 16)} ${f[9]}`;
  });
}

/** A TUN "vt0" with 10.201.0.1/24, up. */
function tunUp(): TunDevice {
  const tun = TunDevice.open("vt0");
  setInterfaceAddress("vt0", ip("10.201.0.1"), 24);
  setInterfaceUp("vt0");
  return tun;
}

const CASES: Record<string, () => Promise<void> | void> = {
  ipv4Readback() {
    const tun = TunDevice.open("vt0");
    const before = getInterfaceInfo("vt0");
    strictEqual(before.up, false);
    strictEqual(before.ipv4, undefined, "no IPv4 address yet");
    strictEqual(before.mtu, 1500, "TUN default MTU");
    strictEqual(interfaceIndex("vt0"), before.index);
    setInterfaceAddress("vt0", ip("10.201.0.77"), 20);
    setInterfaceMtu("vt0", 1420);
    setInterfaceUp("vt0");
    deepStrictEqual(infoText(getInterfaceInfo("vt0")), {
      index: before.index,
      mtu: 1420,
      up: true,
      ipv4: { address: "10.201.0.77", netmask: "255.255.240.0" },
    });
    ok(routesV4().includes("10.201.0.0/20 vt0"), "kernel added the connected route for the new prefix");
    // Changing the address replaces the primary one.
    setInterfaceAddress("vt0", ip("10.201.0.1"), 24);
    deepStrictEqual(infoText(getInterfaceInfo("vt0")).ipv4, {
      address: "10.201.0.1",
      netmask: "255.255.255.0",
    });
    tun.close();
  },

  async ipv6Address() {
    const tun = tunUp();
    setInterfaceAddress("vt0", ip("fd00:201::1"), 64);
    const line = Deno.readTextFileSync("/proc/net/if_inet6").split("\n").find((l) =>
      l.startsWith("fd000201000000000000000000000001")
    );
    ok(line, "fd00:201::1 listed in /proc/net/if_inet6");
    const f = line.trim().split(/\s+/);
    strictEqual(parseInt(f[1], 16), getInterfaceInfo("vt0").index, "on vt0's index");
    strictEqual(parseInt(f[2], 16), 64, "prefix length 64");
    strictEqual(f[5], "vt0");
    // iproute2 (inspection only) sees it too.
    const out = new Deno.Command("ip", { args: ["-j", "-6", "addr", "show", "dev", "vt0"] }).outputSync();
    const addrs = JSON.parse(decoder.decode(out.stdout))[0].addr_info as {
      local: string;
      prefixlen: number;
    }[];
    ok(addrs.some((a) => a.local === "fd00:201::1" && a.prefixlen === 64), JSON.stringify(addrs));
    const dup = assertThrows(() => setInterfaceAddress("vt0", ip("fd00:201::1"), 64), InterfaceError);
    strictEqual(dup.code, "EEXIST");
    await Promise.resolve();
    tun.close();
  },

  routesV4() {
    const tun = tunUp();
    setInterfaceUp("lo");
    addRoute(route("10.202.0.0/16"), "vt0");
    addRoute(route("10.203.0.5/16", "10.201.0.9"), "vt0"); // host bits are cleared: 10.203.0.0/16
    addRoute(route("10.204.1.2/32"), "vt0");
    addRoute(route("10.209.0.0/24"), "lo");
    let routes = routesV4();
    for (
      const r of [
        "10.202.0.0/16 vt0",
        "10.203.0.0/16 vt0 via 10.201.0.9",
        "10.204.1.2/32 vt0",
        "10.209.0.0/24 lo",
      ]
    ) ok(routes.includes(r), `${r} in ${JSON.stringify(routes)}`);
    const dup = assertThrows(() => addRoute(route("10.202.0.0/16"), "vt0"), InterfaceError);
    strictEqual(dup.code, "EEXIST");
    deleteRoute(route("10.202.0.0/16"), "vt0");
    deleteRoute(route("10.203.0.0/16", "10.201.0.9"), "vt0");
    deleteRoute(route("10.204.1.2/32"), "vt0");
    deleteRoute(route("10.209.0.0/24"), "lo");
    routes = routesV4();
    deepStrictEqual(routes, ["10.201.0.0/24 vt0"], "only the connected route is left");
    const gone = assertThrows(() => deleteRoute(route("10.202.0.0/16"), "vt0"), Error);
    strictEqual(
      gone.message,
      "delete route 10.202.0.0/16 dev vt0: ioctl(SIOCDELRT) failed: ESRCH (No such process): no such route",
    );
    tun.close();
  },

  routesV6() {
    const tun = tunUp();
    setInterfaceAddress("vt0", ip("fd00:201::1"), 64);
    addRoute(route("fd00:202::/48"), "vt0");
    addRoute(route("fd00:203::/64", "fd00:201::9"), "vt0");
    addRoute(route("fd00:204::7"), "vt0"); // bare address = /128
    const want = [
      "fd000202000000000000000000000000/48 vt0",
      "fd000203000000000000000000000000/64 vt0",
      "fd000204000000000000000000000007/128 vt0",
    ];
    for (const r of want) ok(routesV6().includes(r), `${r} in ${JSON.stringify(routesV6())}`);
    const via = new Deno.Command("ip", { args: ["-j", "-6", "route", "show", "fd00:203::/64"] }).outputSync();
    strictEqual(JSON.parse(decoder.decode(via.stdout))[0].gateway, "fd00:201::9");
    deleteRoute(route("fd00:202::/48"), "vt0");
    deleteRoute(route("fd00:203::/64", "fd00:201::9"), "vt0");
    deleteRoute(route("fd00:204::7/128"), "vt0");
    for (const r of want) ok(!routesV6().includes(r), `${r} removed`);
    tun.close();
  },

  defaultRoute() {
    strictEqual(defaultRouteV4(), null, "a fresh namespace has no default route");
    const tun = tunUp();
    addRoute(route("0.0.0.0/0", "10.201.0.254"), "vt0");
    deepStrictEqual(defaultRouteV4(), { gateway: ip("10.201.0.254"), ifname: "vt0" });
    deleteRoute(route("0.0.0.0/0", "10.201.0.254"), "vt0");
    strictEqual(defaultRouteV4(), null);
    tun.close();
  },

  errors() {
    const nodev = assertThrows(() => getInterfaceInfo("nope0"), InterfaceError);
    strictEqual(nodev.code, "ENODEV");
    strictEqual(
      nodev.message,
      'read interface "nope0": ioctl(SIOCGIFINDEX) failed: ENODEV (No such device): no such network interface',
    );
    const tun = TunDevice.open("vt0");
    const mtu = assertThrows(() => setInterfaceMtu("vt0", 20), Error);
    strictEqual(mtu.message, 'set MTU 20 on "vt0": MTU must be an integer from 68 to 65535');
    const addr = assertThrows(() => setInterfaceAddress("vt0", new Uint8Array(5), 24), Error);
    strictEqual(addr.message, 'set address (5 bytes)/24 on "vt0": an address is 4 or 16 bytes, got 5');
    const len = assertThrows(() => setInterfaceAddress("vt0", ip("10.0.0.1"), 33), Error);
    strictEqual(len.message, 'set address 10.0.0.1/33 on "vt0": prefix length must be 0..32, got 33');
    const mixed = assertThrows(() => addRoute(route("fd00::/8", "10.0.0.1"), "vt0"), Error);
    strictEqual(
      mixed.message,
      "add route fd00:0:0:0:0:0:0:0/8 dev vt0 via 10.0.0.1: gateway and destination are of different IP versions",
    );
    const down = assertThrows(() => addRoute(route("10.9.0.0/16"), "vt0"), Error);
    strictEqual(
      down.message,
      "add route 10.9.0.0/16 dev vt0: ioctl(SIOCADDRT) failed: ENETDOWN (Network is down): the interface is down",
    );
    const long = assertThrows(() => setInterfaceUp("a-name-too-long-x"), Error);
    strictEqual(
      long.message,
      'bring "a-name-too-long-x" up: interface name "a-name-too-long-x" is 17 bytes long; Linux allows at most 15',
    );
    tun.close();
  },
};

Deno.test("interface: IPv4 address, netmask, MTU and UP read back from the kernel", () =>
  runInNetns("ipv4Readback"));
Deno.test("interface: IPv6 address set on a TUN is visible", () => runInNetns("ipv6Address"));
Deno.test("interface: IPv4 routes (on-link, via gateway, host) appear and disappear", () =>
  runInNetns("routesV4"));
Deno.test("interface: IPv6 routes appear and disappear", () => runInNetns("routesV6"));
Deno.test("interface: defaultRouteV4 reads the default route from /proc/net/route", () =>
  runInNetns("defaultRoute"));
Deno.test("interface: errors name the action, errno and a hint", () => runInNetns("errors"));

await serveChildCase(CASES);
