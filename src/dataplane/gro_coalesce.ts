/**
 * User-space GRO for the TUN write side: in a batch of decrypted IP packets, consecutive TCP segments of
 * one flow are merged into one super-packet with a virtio_net_hdr (TCPV4/TCPV6, partial checksum), so the
 * kernel takes one write instead of many. Everything else is written as it is, behind an all-zero header.
 *
 * A segment is appended to the latest super-packet of its flow (same addresses, ports and ACK number) only
 * when it follows it exactly in sequence, carries only ACK (or ACK+PSH), has the same IP header fields that
 * matter (TOS/traffic class, DF, TTL/hop limit), the same TCP options, a payload no larger than the first
 * segment's, a valid checksum (a merged packet's checksum is recomputed, so a bad one would be laundered),
 * and fits in 64 KiB and in the head packet's buffer. A short segment or PSH ends the super-packet; any
 * other packet of the flow ends it too, so packets of a flow keep their order. Out-of-order segments are
 * not merged. Works in the caller's buffers with a reusable table; the only allocation is one view per
 * appended segment, for the native copy of its payload.
 */
import { readU32 } from "../net/bytes.ts";
import { checksumOf, foldSum, pseudoHeaderSum, sumBytes } from "../net/checksum.ts";
import {
  clearVirtioNetHdr,
  newVirtioNetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_LENGTH,
  type VirtioNetHdr,
  writeVirtioNetHdr,
} from "./virtio_net_hdr.ts";

/** Largest merged packet: the IPv4 total length and IPv6 payload length are 16 bits. */
const MAX_MERGED = 0xffff;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;

/** Per-batch state of the super-packets being built; make one per write loop and pass it every batch. */
export class GroTable {
  /** Buffer index of each super-packet's head packet. */
  readonly head: Int32Array;
  /** Payload bytes of the head segment: the segment size of the super-packet. */
  readonly gsoSize: Int32Array;
  /** Segments appended to the head so far. */
  readonly merged: Int32Array;
  /** Sequence number the next appended segment must carry. */
  readonly nextSeq: Float64Array;
  /** IP header length of the head (20 or 40) and IP + TCP header length. */
  readonly ipLen: Uint8Array;
  readonly headLen: Uint8Array;
  /** 1 when nothing more may be appended (PSH, a short segment, another packet of the flow). */
  readonly closed: Uint8Array;
  /** 1 once the head's checksum was verified. */
  readonly verified: Uint8Array;
  count = 0;
  /** Scratch header the accounting pass fills and writes. */
  readonly scratch: VirtioNetHdr = newVirtioNetHdr();

  /** @param capacity the largest batch passed to {@link groCoalesce} */
  constructor(readonly capacity: number) {
    this.head = new Int32Array(capacity);
    this.gsoSize = new Int32Array(capacity);
    this.merged = new Int32Array(capacity);
    this.nextSeq = new Float64Array(capacity);
    this.ipLen = new Uint8Array(capacity);
    this.headLen = new Uint8Array(capacity);
    this.closed = new Uint8Array(capacity);
    this.verified = new Uint8Array(capacity);
  }
}

/**
 * Coalesces the batch: packet `i` is `bufs[i][offset, offset + lens[i])`, with `offset >= 10` bytes in
 * front for its virtio_net_hdr. Merged segments are appended to their head's buffer (`lens` of the head
 * grows). Returns how many packets to write; their indices, in order, are in `toWrite`, each with its
 * virtio_net_hdr written at `offset - 10`.
 */
export function groCoalesce(
  bufs: readonly Uint8Array[],
  lens: Int32Array,
  count: number,
  offset: number,
  table: GroTable,
  toWrite: Int32Array,
): number {
  if (offset < VIRTIO_NET_HDR_LENGTH) {
    throw new RangeError("groCoalesce: offset leaves no room for the header");
  }
  if (count > table.capacity || count > toWrite.length) throw new RangeError("groCoalesce: batch too large");
  table.count = 0;
  let n = 0;
  for (let i = 0; i < count; i++) {
    if (!consider(bufs, lens, i, offset, table)) toWrite[n++] = i;
  }
  for (let k = 0; k < n; k++) clearVirtioNetHdr(bufs[toWrite[k]], offset - VIRTIO_NET_HDR_LENGTH);
  for (let t = 0; t < table.count; t++) if (table.merged[t] > 0) finish(bufs, lens, offset, table, t);
  return n;
}

/** True when packet `i` was appended to a super-packet (and is not written itself). */
function consider(
  bufs: readonly Uint8Array[],
  lens: Int32Array,
  i: number,
  off: number,
  t: GroTable,
): boolean {
  const p = bufs[i], len = lens[i];
  if (len < 40 || off + len > p.length) return false;
  const version = p[off] >> 4;
  let ipLen: number;
  if (version === 4) {
    if (p[off + 9] !== 6) return false;
    ipLen = (p[off] & 0x0f) * 4;
  } else if (version === 6 && len >= 60) {
    if (p[off + 6] !== 6) return false;
    ipLen = 40;
  } else {
    return false;
  }
  if (ipLen < 20 || len < ipLen + 20) return false;
  // A TCP packet: whatever happens next, it ends the latest super-packet of its connection unless appended.
  const latest = latestOfConnection(bufs, p, off, version, ipLen, t);
  const tcpLen = (p[off + ipLen + 12] >> 4) * 4;
  const headLen = ipLen + tcpLen;
  const flags = p[off + ipLen + 13];
  const candidate = tcpLen >= 20 && len > headLen &&
    (flags === TCP_ACK || flags === (TCP_ACK | TCP_PSH)) &&
    (version === 6
      ? ((p[off + 4] << 8) | p[off + 5]) === len - 40
      : ipLen === 20 && ((p[off + 2] << 8) | p[off + 3]) === len && (p[off + 6] & 0x3f) === 0 &&
        p[off + 7] === 0);
  if (!candidate) {
    if (latest >= 0) t.closed[latest] = 1;
    return false;
  }
  const payload = len - headLen;
  if (latest >= 0 && t.closed[latest] === 0) {
    if (canAppend(bufs, lens, p, off, len, ipLen, headLen, payload, latest, t)) {
      append(bufs, lens, p, off, len, headLen, payload, flags, latest, t);
      return true;
    }
    t.closed[latest] = 1;
  }
  const s = t.count++;
  t.head[s] = i;
  t.gsoSize[s] = payload;
  t.merged[s] = 0;
  t.nextSeq[s] = (readU32(p, off + ipLen + 4) + payload) % 0x100000000;
  t.ipLen[s] = ipLen;
  t.headLen[s] = headLen;
  t.closed[s] = flags & TCP_PSH ? 1 : 0;
  t.verified[s] = 0; // checked only when something is to be appended to it
  return false;
}

/** The latest super-packet of the same TCP connection (addresses and ports), or -1. */
function latestOfConnection(
  bufs: readonly Uint8Array[],
  p: Uint8Array,
  off: number,
  version: number,
  ipLen: number,
  t: GroTable,
): number {
  const addrAt = version === 4 ? 12 : 8, addrEnd = version === 4 ? 20 : 40;
  for (let s = t.count - 1; s >= 0; s--) {
    const h = bufs[t.head[s]], hPorts = off + t.ipLen[s], ports = off + ipLen;
    if (h[off] >> 4 !== version || !same(p, h, off + addrAt, off + addrEnd)) continue;
    // Ports compared at each packet's own offset: a packet with IPv4 options still ends the flow's run.
    if (p[ports] !== h[hPorts] || p[ports + 1] !== h[hPorts + 1]) continue;
    if (p[ports + 2] !== h[hPorts + 2] || p[ports + 3] !== h[hPorts + 3]) continue;
    return s;
  }
  return -1;
}

function canAppend(
  bufs: readonly Uint8Array[],
  lens: Int32Array,
  p: Uint8Array,
  off: number,
  len: number,
  ipLen: number,
  headLen: number,
  payload: number,
  s: number,
  t: GroTable,
): boolean {
  const h = bufs[t.head[s]], hLen = lens[t.head[s]];
  if (t.headLen[s] !== headLen || payload > t.gsoSize[s]) return false;
  if (readU32(p, off + ipLen + 4) !== t.nextSeq[s]) return false; // not the next in sequence
  if (!same(p, h, off + ipLen + 8, off + ipLen + 12)) return false; // another ACK number
  if (!same(p, h, off + ipLen + 20, off + headLen)) return false; // other TCP options
  const v = p[off] >> 4;
  if (v === 4) {
    if (p[off + 1] !== h[off + 1] || p[off + 6] >> 5 !== h[off + 6] >> 5 || p[off + 8] !== h[off + 8]) {
      return false;
    }
  } else if (p[off] !== h[off] || p[off + 1] >> 4 !== h[off + 1] >> 4 || p[off + 7] !== h[off + 7]) {
    return false;
  }
  if (hLen + payload > MAX_MERGED || off + hLen + payload > h.length) return false;
  if (t.verified[s] === 0) {
    if (!checksumValid(h, off, hLen, ipLen, v)) return false;
    t.verified[s] = 1;
  }
  return checksumValid(p, off, len, ipLen, v);
}

function append(
  bufs: readonly Uint8Array[],
  lens: Int32Array,
  p: Uint8Array,
  off: number,
  len: number,
  headLen: number,
  payload: number,
  flags: number,
  s: number,
  t: GroTable,
): void {
  const hi = t.head[s], h = bufs[hi];
  h.set(p.subarray(off + headLen, off + len), off + lens[hi]);
  lens[hi] += payload;
  t.merged[s]++;
  t.nextSeq[s] = (t.nextSeq[s] + payload) % 0x100000000;
  if (payload < t.gsoSize[s]) t.closed[s] = 1; // only the last segment may be short
  if (flags & TCP_PSH) {
    h[off + t.ipLen[s] + 13] |= TCP_PSH; // PSH moves to the super-packet, which then ends
    t.closed[s] = 1;
  }
}

/** Rewrites a super-packet's IP length (and IPv4 checksum), TCP pseudo-header sum and virtio header. */
function finish(bufs: readonly Uint8Array[], lens: Int32Array, off: number, t: GroTable, s: number): void {
  const h = bufs[t.head[s]], len = lens[t.head[s]], ipLen = t.ipLen[s];
  const v4 = h[off] >> 4 === 4;
  if (v4) {
    put16(h, off + 2, len);
    put16(h, off + 10, 0);
    put16(h, off + 10, checksumOf(sumBytes(h, off, off + ipLen)));
  } else {
    put16(h, off + 4, len - ipLen);
  }
  // CHECKSUM_PARTIAL: the kernel completes the sum from csumStart on, starting from the pseudo-header sum.
  const pseudo = pseudoHeaderSum(h, off + (v4 ? 12 : 8), v4 ? 4 : 16, 6) + len - ipLen;
  put16(h, off + ipLen + 16, foldSum(pseudo));
  const hdr = t.scratch;
  hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  hdr.gsoType = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
  hdr.hdrLen = t.headLen[s];
  hdr.gsoSize = t.gsoSize[s];
  hdr.csumStart = ipLen;
  hdr.csumOffset = 16;
  writeVirtioNetHdr(h, off - VIRTIO_NET_HDR_LENGTH, hdr);
}

function checksumValid(p: Uint8Array, off: number, len: number, ipLen: number, version: number): boolean {
  const pseudo = pseudoHeaderSum(p, off + (version === 4 ? 12 : 8), version === 4 ? 4 : 16, 6);
  return checksumOf(sumBytes(p, off + ipLen, off + len, pseudo + len - ipLen)) === 0;
}

function same(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let k = from; k < to; k++) if (a[k] !== b[k]) return false;
  return true;
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}
