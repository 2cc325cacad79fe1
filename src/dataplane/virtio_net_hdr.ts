/**
 * `struct virtio_net_hdr` (linux/virtio_net.h), the 10 bytes in front of every packet read from or written
 * to a TUN device opened with IFF_VNET_HDR: whether the packet is a GSO super-packet, its segment size and
 * where its checksum starts. Fields are little-endian (the host's order on the machines we run on).
 */

/** Size of the header in front of each packet. */
export const VIRTIO_NET_HDR_LENGTH = 10;
/** flags: the checksum from csumStart on is partial (only the pseudo-header sum is filled in). */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** gsoType: a plain packet. */
export const VIRTIO_NET_HDR_GSO_NONE = 0;
/** gsoType: TCP over IPv4 super-packet. */
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
/** gsoType: TCP over IPv6 super-packet. */
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** gsoType: UDP super-packet (USO), IPv4 or IPv6. */
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
/** gsoType bit: the sender used ECN (CWR belongs on the first segment only). */
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** The decoded header; callers keep one and refill it per packet. */
export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** A zeroed header to refill. */
export function newVirtioNetHdr(): VirtioNetHdr {
  return { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
}

const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >> 8) & 0xff;
}

/** Fills `out` from `b[at, at + 10)`. */
export function readVirtioNetHdr(b: Uint8Array, at: number, out: VirtioNetHdr): void {
  out.flags = b[at];
  out.gsoType = b[at + 1];
  out.hdrLen = u16(b, at + 2);
  out.gsoSize = u16(b, at + 4);
  out.csumStart = u16(b, at + 6);
  out.csumOffset = u16(b, at + 8);
}

/** Writes `h` to `b[at, at + 10)`. */
export function writeVirtioNetHdr(b: Uint8Array, at: number, h: VirtioNetHdr): void {
  b[at] = h.flags;
  b[at + 1] = h.gsoType;
  put16(b, at + 2, h.hdrLen);
  put16(b, at + 4, h.gsoSize);
  put16(b, at + 6, h.csumStart);
  put16(b, at + 8, h.csumOffset);
}

/** Writes an all-zero header (a plain packet with a complete checksum) to `b[at, at + 10)`. */
export function clearVirtioNetHdr(b: Uint8Array, at: number): void {
  b.fill(0, at, at + VIRTIO_NET_HDR_LENGTH);
}
