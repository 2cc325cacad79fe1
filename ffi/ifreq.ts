/**
 * Kernel struct layouts for interface and route ioctls (Linux x86_64 / aarch64, LP64, little-endian).
 * Each builder returns a fresh buffer the caller passes to `ioctl`; field offsets are noted beside them.
 */

/** Longest interface name in bytes (IFNAMSIZ 16 minus the NUL). */
export const IFNAMSIZ_MAX = 15;
/** sizeof(struct ifreq). */
export const IFREQ_SIZE = 40;
/** Offset of the ifreq union (ifr_addr, ifr_flags, ifr_mtu, ifr_ifindex...). */
export const IFR_DATA = 16;

/** Address family of IPv4 sockets and sockaddr_in. */
export const AF_INET = 2;
/** Address family of IPv6 sockets and sockaddr_in6. */
export const AF_INET6 = 10;

const encoder = new TextEncoder();

/** Why a name cannot be an interface name, or null if it can (mirrors the kernel's dev_valid_name). */
export function invalidInterfaceName(name: string): string | null {
  const bytes = encoder.encode(name).length;
  if (bytes > IFNAMSIZ_MAX) return `is ${bytes} bytes long; Linux allows at most ${IFNAMSIZ_MAX}`;
  if (name === "." || name === "..") return "is reserved";
  if (/[/:\s]/.test(name)) return "contains '/', ':' or whitespace";
  return null;
}

/** A zeroed ifreq with `ifr_name` set. */
export function ifreq(name: string): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(IFREQ_SIZE);
  buf.set(encoder.encode(name).subarray(0, IFNAMSIZ_MAX));
  return buf;
}

/** The NUL-terminated `ifr_name` of an ifreq. */
export function ifreqName(buf: Uint8Array): string {
  const end = buf.subarray(0, 16).indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? 16 : end));
}

/** A DataView over a buffer's own bytes. */
export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Write a sockaddr_in {family, port 0, addr} at `offset` (16 bytes). */
export function putSockaddrIn(buf: Uint8Array, offset: number, addr: Uint8Array): void {
  view(buf).setUint16(offset, AF_INET, true);
  buf.set(addr.subarray(0, 4), offset + 4);
}

/** Read the 4 address bytes of a sockaddr_in at `offset`. */
export function getSockaddrIn(buf: Uint8Array, offset: number): Uint8Array {
  return buf.slice(offset + 4, offset + 8);
}

/** struct in6_ifreq { in6_addr addr @0; u32 prefixlen @16; int ifindex @20 } = 24 bytes. */
export function in6Ifreq(addr: Uint8Array, prefixLength: number, ifindex: number): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(24);
  buf.set(addr, 0);
  const v = view(buf);
  v.setUint32(16, prefixLength, true);
  v.setInt32(20, ifindex, true);
  return buf;
}

/** Route flag: usable. */
export const RTF_UP = 0x1;
/** Route flag: goes via a gateway. */
export const RTF_GATEWAY = 0x2;
/** Route flag: host route (full-length prefix). */
export const RTF_HOST = 0x4;
/** Route flag: reject (with type RTN_UNREACHABLE: packets to it fail at once with ENETUNREACH). */
export const RTF_REJECT = 0x200;
const RTN_UNREACHABLE = 7;

/**
 * struct rtentry (120 bytes): rt_dst @8, rt_gateway @24, rt_genmask @40 (sockaddrs), rt_flags u16 @56,
 * rt_metric i16 @80, rt_dev char* @88. `devName` must stay alive until the ioctl returns (it is referenced
 * by pointer), so it is returned alongside the struct.
 */
export function rtentry(
  dst: Uint8Array,
  mask: Uint8Array,
  gateway: Uint8Array | null,
  dev: string,
): { buf: Uint8Array<ArrayBuffer>; devName: Uint8Array<ArrayBuffer> } {
  const buf = new Uint8Array(120);
  putSockaddrIn(buf, 8, dst);
  putSockaddrIn(buf, 40, mask);
  let flags = RTF_UP;
  if (gateway) {
    putSockaddrIn(buf, 24, gateway);
    flags |= RTF_GATEWAY;
  }
  if (mask.every((b) => b === 0xff)) flags |= RTF_HOST;
  const v = view(buf);
  v.setUint16(56, flags, true);
  const devName = new Uint8Array(16);
  devName.set(encoder.encode(dev).subarray(0, IFNAMSIZ_MAX));
  v.setBigUint64(88, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(devName))), true);
  return { buf, devName };
}

/** Metric the kernel gives user IPv6 routes by default (IP6_RT_PRIO_USER); add and delete must agree. */
export const IP6_RT_PRIO_USER = 1024;

/**
 * struct in6_rtmsg (80 bytes): dst @0, src @16, gateway @32, type u32 @48, dst_len u16 @52, src_len u16 @54,
 * metric u32 @56, info ulong @64, flags u32 @72, ifindex i32 @76.
 */
export function in6Rtmsg(
  dst: Uint8Array,
  prefixLength: number,
  gateway: Uint8Array | null,
  ifindex: number,
  reject = false,
): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(80);
  buf.set(dst, 0);
  let flags = reject ? RTF_UP | RTF_REJECT : RTF_UP;
  if (gateway) {
    buf.set(gateway, 32);
    flags |= RTF_GATEWAY;
  }
  if (prefixLength === 128) flags |= RTF_HOST;
  const v = view(buf);
  if (reject) v.setUint32(48, RTN_UNREACHABLE, true);
  v.setUint16(52, prefixLength, true);
  v.setUint32(56, IP6_RT_PRIO_USER, true);
  v.setUint32(72, flags, true);
  v.setInt32(76, ifindex, true);
  return buf;
}
