/**
 * Network interface setup through ioctls on an AF_INET / AF_INET6 datagram socket (what ifconfig and
 * route(8) do), so the program needs no iproute2. Each call opens and closes its own socket: these run a
 * few times at start-up, never per packet. Addresses are raw bytes (4 for IPv4, 16 for IPv6); the caller
 * parses and formats text.
 */
import { errno, ErrnoError, libc } from "./libc.ts";
import {
  AF_INET,
  AF_INET6,
  getSockaddrIn,
  IFR_DATA,
  ifreq,
  in6Ifreq,
  in6Rtmsg,
  invalidInterfaceName,
  putSockaddrIn,
  rtentry,
  view,
} from "./ifreq.ts";

const SIOCADDRT = 0x890bn;
const SIOCDELRT = 0x890cn;
const SIOCGIFFLAGS = 0x8913n;
const SIOCSIFFLAGS = 0x8914n;
const SIOCGIFADDR = 0x8915n;
const SIOCSIFADDR = 0x8916n;
const SIOCGIFNETMASK = 0x891bn;
const SIOCSIFNETMASK = 0x891cn;
const SIOCGIFMTU = 0x8921n;
const SIOCSIFMTU = 0x8922n;
const SIOCGIFINDEX = 0x8933n;
const IFF_UP = 0x1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const EADDRNOTAVAIL = 99;

/** What the user can do about common errno values, by name. */
const HINTS: Record<string, string> = {
  EPERM: "run as root or with CAP_NET_ADMIN",
  EACCES: "run as root or with CAP_NET_ADMIN",
  ENODEV: "no such network interface",
  ENXIO: "no such network interface",
  EEXIST: "it already exists",
  ESRCH: "no such route",
  ENETDOWN: "the interface is down",
  ENETUNREACH: "the gateway is not reachable through an interface that is up",
  EINVAL: "the kernel rejected the value",
};

/** A failed interface or route operation: what was attempted, on which interface, and why. */
export class InterfaceError extends Error {
  /** errno name such as "EPERM", or "EINVAL" for a value refused before any syscall. */
  readonly code: string;
  constructor(action: string, code: string, detail: string, options?: ErrorOptions) {
    super(`${action}: ${detail}`, options);
    this.name = "InterfaceError";
    this.code = code;
  }
}

function fail(action: string, call: string): InterfaceError {
  const err = new ErrnoError(call, errno());
  const hint = HINTS[err.codeName];
  return new InterfaceError(action, err.codeName, hint ? `${err.message}: ${hint}` : err.message, {
    cause: err,
  });
}

function checkName(action: string, ifname: string): void {
  const why = invalidInterfaceName(ifname);
  if (why !== null || ifname === "") {
    throw new InterfaceError(action, "EINVAL", `interface name "${ifname}" ${why ?? "is empty"}`);
  }
}

/** The netmask of a prefix length in `length` bytes (4 or 16); here since ffi/ imports nothing from src/. */
function maskOf(prefixLength: number, length: number): Uint8Array {
  const m = new Uint8Array(length);
  for (let i = 0; i < length; i++) m[i] = 0xff & ~(0xff >> Math.max(0, Math.min(8, prefixLength - 8 * i)));
  return m;
}

/** Refuses an address that is not 4 or 16 bytes or a prefix length out of range for it. */
function checkAddress(action: string, address: Uint8Array, prefixLength: number): void {
  if (address.length !== 4 && address.length !== 16) {
    throw new InterfaceError(action, "EINVAL", `an address is 4 or 16 bytes, got ${address.length}`);
  }
  const max = address.length * 8;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max) {
    throw new InterfaceError(action, "EINVAL", `prefix length must be 0..${max}, got ${prefixLength}`);
  }
}

/** Text of an address for messages only: dotted IPv4, uncompressed hex IPv6. */
function show(address: Uint8Array): string {
  if (address.length === 4) return address.join(".");
  if (address.length !== 16) return `(${address.length} bytes)`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((address[i] << 8) | address[i + 1]).toString(16));
  return words.join(":");
}

/** Run `body` with a fresh datagram socket of `family`, closing it afterwards. */
function withSocket<T>(action: string, family: number, body: (fd: number) => T): T {
  const fd = libc().socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw fail(action, family === AF_INET ? "socket(AF_INET)" : "socket(AF_INET6)");
  try {
    return body(fd);
  } finally {
    libc().close(fd);
  }
}

function ioctlOrThrow(
  fd: number,
  request: bigint,
  buf: Uint8Array<ArrayBuffer>,
  action: string,
  call: string,
) {
  if (libc().ioctl(fd, request, buf) < 0) throw fail(action, call);
}

/** Kernel index of an interface (throws `InterfaceError` ENODEV if it does not exist). */
export function interfaceIndex(ifname: string): number {
  const action = `look up interface "${ifname}"`;
  checkName(action, ifname);
  return withSocket(action, AF_INET, (fd) => {
    const ifr = ifreq(ifname);
    ioctlOrThrow(fd, SIOCGIFINDEX, ifr, action, "ioctl(SIOCGIFINDEX)");
    return view(ifr).getInt32(IFR_DATA, true);
  });
}

/**
 * Give `ifname` an address (4 or 16 bytes): IPv4 sets address then netmask (SIOCSIFADDR + SIOCSIFNETMASK,
 * replacing the interface's primary IPv4 address); IPv6 adds one more address (SIOCSIFADDR with in6_ifreq).
 */
export function setInterfaceAddress(ifname: string, address: Uint8Array, prefixLength: number): void {
  const action = `set address ${show(address)}/${prefixLength} on "${ifname}"`;
  checkName(action, ifname);
  checkAddress(action, address, prefixLength);
  if (address.length === 4) {
    withSocket(action, AF_INET, (fd) => {
      const ifr = ifreq(ifname);
      putSockaddrIn(ifr, IFR_DATA, address);
      ioctlOrThrow(fd, SIOCSIFADDR, ifr, action, "ioctl(SIOCSIFADDR)");
      const mask = ifreq(ifname);
      putSockaddrIn(mask, IFR_DATA, maskOf(prefixLength, 4));
      ioctlOrThrow(fd, SIOCSIFNETMASK, mask, action, "ioctl(SIOCSIFNETMASK)");
    });
  } else {
    const index = interfaceIndex(ifname);
    withSocket(action, AF_INET6, (fd) => {
      ioctlOrThrow(fd, SIOCSIFADDR, in6Ifreq(address, prefixLength, index), action, "ioctl(SIOCSIFADDR)");
    });
  }
}

/** Set the interface MTU (SIOCSIFMTU). */
export function setInterfaceMtu(ifname: string, mtu: number): void {
  const action = `set MTU ${mtu} on "${ifname}"`;
  checkName(action, ifname);
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new InterfaceError(action, "EINVAL", "MTU must be an integer from 68 to 65535");
  }
  withSocket(action, AF_INET, (fd) => {
    const ifr = ifreq(ifname);
    view(ifr).setInt32(IFR_DATA, mtu, true);
    ioctlOrThrow(fd, SIOCSIFMTU, ifr, action, "ioctl(SIOCSIFMTU)");
  });
}

/** Set IFF_UP on the interface, keeping its other flags. */
export function setInterfaceUp(ifname: string): void {
  const action = `bring "${ifname}" up`;
  checkName(action, ifname);
  withSocket(action, AF_INET, (fd) => {
    const ifr = ifreq(ifname);
    ioctlOrThrow(fd, SIOCGIFFLAGS, ifr, action, "ioctl(SIOCGIFFLAGS)");
    const v = view(ifr);
    v.setUint16(IFR_DATA, v.getUint16(IFR_DATA, true) | IFF_UP, true);
    ioctlOrThrow(fd, SIOCSIFFLAGS, ifr, action, "ioctl(SIOCSIFFLAGS)");
  });
}

/** What the kernel reports for an interface (IPv4 address only if it has one). */
export interface InterfaceInfo {
  index: number;
  mtu: number;
  up: boolean;
  /** Primary IPv4 address and netmask, 4 bytes each. */
  ipv4?: { address: Uint8Array; netmask: Uint8Array };
}

/** Read an interface's index, MTU, UP flag and primary IPv4 address/netmask back from the kernel. */
export function getInterfaceInfo(ifname: string): InterfaceInfo {
  const action = `read interface "${ifname}"`;
  checkName(action, ifname);
  return withSocket(action, AF_INET, (fd) => {
    const get = (request: bigint, call: string) => {
      const ifr = ifreq(ifname);
      ioctlOrThrow(fd, request, ifr, action, call);
      return ifr;
    };
    const index = view(get(SIOCGIFINDEX, "ioctl(SIOCGIFINDEX)")).getInt32(IFR_DATA, true);
    const mtu = view(get(SIOCGIFMTU, "ioctl(SIOCGIFMTU)")).getInt32(IFR_DATA, true);
    const flags = view(get(SIOCGIFFLAGS, "ioctl(SIOCGIFFLAGS)")).getUint16(IFR_DATA, true);
    const info: InterfaceInfo = { index, mtu, up: (flags & IFF_UP) !== 0 };
    const addr = ifreq(ifname);
    if (libc().ioctl(fd, SIOCGIFADDR, addr) < 0) {
      if (errno() !== EADDRNOTAVAIL) throw fail(action, "ioctl(SIOCGIFADDR)");
      return info; // no IPv4 address yet
    }
    const mask = get(SIOCGIFNETMASK, "ioctl(SIOCGIFNETMASK)");
    info.ipv4 = {
      address: getSockaddrIn(addr, IFR_DATA),
      netmask: getSockaddrIn(mask, IFR_DATA),
    };
    return info;
  });
}

/** A route: destination network (4 or 16 bytes; host bits are cleared) and prefix length, optional gateway. */
export interface RouteSpec {
  readonly destination: Uint8Array;
  readonly prefixLength: number;
  readonly gateway?: Uint8Array;
}

function route(op: "add" | "delete", r: RouteSpec, ifname: string): void {
  const { prefixLength, gateway } = r;
  const action = `${op} route ${show(r.destination)}/${prefixLength} dev ${ifname}` +
    (gateway ? ` via ${show(gateway)}` : "");
  checkName(action, ifname);
  checkAddress(action, r.destination, prefixLength);
  if (gateway && gateway.length !== r.destination.length) {
    throw new InterfaceError(action, "EINVAL", "gateway and destination are of different IP versions");
  }
  // "10.0.0.5/24" means 10.0.0.0/24, as the kernel wants.
  const mask = maskOf(prefixLength, r.destination.length);
  const dst = r.destination.map((b, i) => b & mask[i]);
  const request = op === "add" ? SIOCADDRT : SIOCDELRT;
  const call = op === "add" ? "ioctl(SIOCADDRT)" : "ioctl(SIOCDELRT)";
  if (dst.length === 4) {
    const { buf, devName } = rtentry(dst, mask, gateway ?? null, ifname);
    withSocket(action, AF_INET, (fd) => ioctlOrThrow(fd, request, buf, action, call));
    devName.fill(0); // keeps the name buffer (pointed to by rt_dev) alive until after the ioctl
  } else {
    const msg = in6Rtmsg(dst, prefixLength, gateway ?? null, interfaceIndex(ifname));
    withSocket(action, AF_INET6, (fd) => ioctlOrThrow(fd, request, msg, action, call));
  }
}

/** Add a route (IPv4 or IPv6) out of `ifname`, optionally via a gateway (SIOCADDRT). */
export function addRoute(r: RouteSpec, ifname: string): void {
  route("add", r, ifname);
}

/** Delete a route added by `addRoute` with the same arguments (SIOCDELRT). */
export function deleteRoute(r: RouteSpec, ifname: string): void {
  route("delete", r, ifname);
}

/**
 * Add (or delete) an IPv6 "unreachable" route to `destination`/`prefixLength` (16 bytes; RTF_REJECT on the
 * loopback device): packets to it fail at once instead of taking a less specific route.
 */
export function setRejectRoute6(op: "add" | "delete", destination: Uint8Array, prefixLength: number): void {
  const action = `${op} unreachable route ${show(destination)}/${prefixLength}`;
  checkAddress(action, destination, prefixLength);
  if (destination.length !== 16) {
    throw new InterfaceError(action, "EINVAL", "only IPv6 reject routes are supported");
  }
  const mask = maskOf(prefixLength, 16);
  const dst = destination.map((b, i) => b & mask[i]);
  const msg = in6Rtmsg(dst, prefixLength, null, interfaceIndex("lo"), true);
  const call = op === "add" ? "ioctl(SIOCADDRT)" : "ioctl(SIOCDELRT)";
  withSocket(
    action,
    AF_INET6,
    (fd) => ioctlOrThrow(fd, op === "add" ? SIOCADDRT : SIOCDELRT, msg, action, call),
  );
}

/** The IPv6 default route of the main table with the lowest metric, from /proc/net/ipv6_route, or null. */
export function defaultRouteV6(): { gateway: Uint8Array; ifname: string } | null {
  let text;
  try {
    text = Deno.readTextFileSync("/proc/net/ipv6_route");
  } catch {
    return null; // no IPv6 on this host
  }
  let best: { gateway: Uint8Array; ifname: string; metric: number } | null = null;
  for (const line of text.trim().split("\n")) {
    // dst dst_len src src_len next_hop metric refcnt use flags iface (hex)
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^0{32}$/.test(f[0]) || f[1] !== "00") continue;
    const flags = parseInt(f[8], 16);
    if (!(flags & 0x1) || !(flags & 0x2) || (flags & 0x200)) continue; // RTF_UP, RTF_GATEWAY, not RTF_REJECT
    const metric = parseInt(f[5], 16);
    if (best && best.metric <= metric) continue;
    const gw = new Uint8Array(16);
    for (let i = 0; i < 16; i++) gw[i] = parseInt(f[4].slice(2 * i, 2 * i + 2), 16);
    best = { gateway: gw, ifname: f[9], metric };
  }
  return best && { gateway: best.gateway, ifname: best.ifname };
}

/** The IPv4 default route of the main table with the lowest metric, from /proc/net/route, or null. */
export function defaultRouteV4(): { gateway: Uint8Array; ifname: string } | null {
  const lines = Deno.readTextFileSync("/proc/net/route").trim().split("\n").slice(1);
  let best: { gateway: Uint8Array; ifname: string; metric: number } | null = null;
  for (const line of lines) {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT (hex, address in host order)
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] !== "00000000" || f[7] !== "00000000") continue;
    const flags = parseInt(f[3], 16);
    if (!(flags & 0x1) || !(flags & 0x2)) continue; // RTF_UP and RTF_GATEWAY
    const metric = Number(f[6]);
    if (best && best.metric <= metric) continue;
    const n = parseInt(f[2], 16);
    const gw = new Uint8Array([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]);
    best = { gateway: gw, ifname: f[0], metric };
  }
  return best && { gateway: best.gateway, ifname: best.ifname };
}
