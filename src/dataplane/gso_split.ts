/**
 * User-space segmentation of a GSO super-packet read from a TUN device with IFF_VNET_HDR: one TCP or UDP
 * packet of up to 64 KiB and its virtio_net_hdr become MTU-size packets, each with its own IPv4 header
 * (total length, an incremented ID, header checksum) or IPv6 payload length, TCP sequence number and
 * flags (FIN and PSH only on the last segment, CWR only on the first) or UDP length, and a complete
 * TCP/UDP checksum. Works in the caller's buffers; allocates nothing but one view per segment's payload
 * copy. Header lengths come from the packet itself, not from hdr_len, which is only a hint.
 */
import { readU32, writeU32 } from "../net/bytes.ts";
import { checksumOf, pseudoHeaderSum, sumBytes } from "../net/checksum.ts";
import {
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  type VirtioNetHdr,
} from "./virtio_net_hdr.ts";

/** Why a super-packet is dropped instead of split. */
export type GsoSplitDrop =
  /** headers inconsistent with the virtio header or with the length */
  | "malformed"
  /** a GSO type, IP extension header or IPv4 option layout this splitter does not handle */
  | "unsupported"
  /** more segments than output buffers, or a buffer too small for its segment */
  | "no-room";

const PROTO_TCP = 6;
const PROTO_UDP = 17;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/**
 * Splits the super-packet `buf[at, at + len)` described by `hdr` into `out[first + i][outOffset,
 * outOffset + sizes[first + i])`, i = 0.. the returned count; or says why not. `hdr.gsoType` must be TCPV4, TCPV6 or UDP_L4
 * (a plain packet needs no split). The input bytes are not modified.
 */
export function gsoSplit(
  buf: Uint8Array,
  at: number,
  len: number,
  hdr: VirtioNetHdr,
  out: readonly Uint8Array[],
  outOffset: number,
  sizes: Int32Array,
  first = 0,
): number | GsoSplitDrop {
  const gsoType = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN; // only says CWR may be set
  const tcp = gsoType === VIRTIO_NET_HDR_GSO_TCPV4 || gsoType === VIRTIO_NET_HDR_GSO_TCPV6;
  if (!tcp && gsoType !== VIRTIO_NET_HDR_GSO_UDP_L4) return "unsupported";
  if (len < 20 || at + len > buf.length) return "malformed";
  const version = buf[at] >> 4;
  let ipLen: number, protocol: number;
  if (version === 4) {
    ipLen = (buf[at] & 0x0f) * 4;
    protocol = buf[at + 9];
    if (ipLen < 20 || (buf[at + 6] & 0x3f) !== 0 || buf[at + 7] !== 0) return "malformed"; // a fragment
    if (gsoType === VIRTIO_NET_HDR_GSO_TCPV6) return "malformed";
  } else if (version === 6) {
    ipLen = 40;
    protocol = buf[at + 6];
    if (gsoType === VIRTIO_NET_HDR_GSO_TCPV4) return "malformed";
  } else {
    return "malformed";
  }
  if (protocol !== (tcp ? PROTO_TCP : PROTO_UDP)) return version === 6 ? "unsupported" : "malformed";
  if (len < ipLen + (tcp ? 20 : 8)) return "malformed";
  const l4Len = tcp ? (buf[at + ipLen + 12] >> 4) * 4 : 8;
  const headLen = ipLen + l4Len;
  if (l4Len < 20 && tcp) return "malformed";
  const gso = hdr.gsoSize;
  if (gso < 1 || len <= headLen) return "malformed";
  const count = Math.ceil((len - headLen) / gso);
  if (first + count > out.length || first + count > sizes.length) return "no-room";

  const addrLen = version === 4 ? 4 : 16;
  const pseudo = pseudoHeaderSum(buf, at + (version === 4 ? 12 : 8), addrLen, protocol);
  const csumAt = ipLen + (tcp ? 16 : 6);
  const firstSeq = tcp ? readU32(buf, at + ipLen + 4) : 0;
  const firstId = version === 4 ? (buf[at + 4] << 8) | buf[at + 5] : 0;
  for (let i = 0, dataAt = at + headLen; i < count; i++, dataAt += gso) {
    const dataLen = Math.min(gso, at + len - dataAt);
    const total = headLen + dataLen;
    const o = out[first + i];
    if (o.length < outOffset + total) return "no-room";
    for (let k = 0; k < headLen; k++) o[outOffset + k] = buf[at + k];
    o.set(buf.subarray(dataAt, dataAt + dataLen), outOffset + headLen);
    sizes[first + i] = total;
    if (version === 4) {
      put16(o, outOffset + 2, total);
      put16(o, outOffset + 4, (firstId + i) & 0xffff);
      put16(o, outOffset + 10, 0);
      put16(o, outOffset + 10, checksumOf(sumBytes(o, outOffset, outOffset + ipLen)));
    } else {
      put16(o, outOffset + 4, total - ipLen);
    }
    const l4 = outOffset + ipLen;
    if (tcp) {
      writeU32(o, l4 + 4, (firstSeq + i * gso) >>> 0);
      if (i < count - 1) o[l4 + 13] &= ~(TCP_FIN | TCP_PSH);
      if (i > 0) o[l4 + 13] &= ~TCP_CWR;
    } else {
      put16(o, l4 + 4, total - ipLen);
    }
    put16(o, outOffset + csumAt, 0);
    let csum = checksumOf(sumBytes(o, l4, outOffset + total, pseudo + total - ipLen));
    if (!tcp && csum === 0) csum = 0xffff; // 0 means "no checksum" in UDP
    put16(o, outOffset + csumAt, csum);
  }
  return count;
}

/**
 * Completes the partial checksum of a plain packet (gsoType NONE with NEEDS_CSUM): the field at
 * `csumStart + csumOffset` holds the pseudo-header sum; the sum from `csumStart` on is folded into it.
 * False when the offsets do not fit in the packet.
 */
export function completeChecksum(buf: Uint8Array, at: number, len: number, hdr: VirtioNetHdr): boolean {
  const fieldAt = hdr.csumStart + hdr.csumOffset;
  if (fieldAt + 2 > len || hdr.csumStart >= len) return false;
  const initial = (buf[at + fieldAt] << 8) | buf[at + fieldAt + 1];
  put16(buf, at + fieldAt, 0);
  put16(buf, at + fieldAt, checksumOf(sumBytes(buf, at + hdr.csumStart, at + len, initial)));
  return true;
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}
