/**
 * User-space GRO (src/dataplane/gro_coalesce.ts): consecutive TCP segments of one flow become one
 * super-packet whose virtio header and partial checksum let the kernel (or our own gsoSplit) cut it back
 * into exactly the original segments; everything that must not be merged (other flows, flags, gaps,
 * reordering, bad checksums, differing headers) is written as it is, in order.
 */
import { assert, assertEquals } from "./assert.ts";
import { groCoalesce, GroTable } from "../src/dataplane/gro_coalesce.ts";
import { gsoSplit } from "../src/dataplane/gso_split.ts";
import {
  newVirtioNetHdr,
  readVirtioNetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
} from "../src/dataplane/virtio_net_hdr.ts";
import {
  buildPacket,
  checksumsValid,
  type PacketSpec,
  pattern,
  refChecksum,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  TS_OPTION,
} from "./packet_builder.ts";

const OFF = 12; // the virtio header goes at OFF - 10
const table = new GroTable(64);

interface Batch {
  bufs: Uint8Array[];
  lens: Int32Array;
  toWrite: number[];
}

/** Runs GRO over `pkts`, each in its own buffer of `room` bytes after OFF. */
function coalesce(pkts: Uint8Array[], room = 65535): Batch {
  const bufs = pkts.map((p) => {
    const b = new Uint8Array(OFF + Math.max(room, p.length)).fill(0xee, 0, OFF);
    b.set(p, OFF);
    return b;
  });
  const lens = Int32Array.from(pkts, (p) => p.length);
  const out = new Int32Array(pkts.length);
  const n = groCoalesce(bufs, lens, pkts.length, OFF, table, out);
  return { bufs, lens, toWrite: Array.from(out.subarray(0, n)) };
}

/** The segments of a flow: `n` packets of `size` bytes (the last `last` bytes), consecutive seq and IDs. */
function segments(base: Omit<PacketSpec, "payload">, n: number, size: number, last = size): Uint8Array[] {
  const seq0 = base.seq ?? 1000;
  return Array.from({ length: n }, (_, k) =>
    buildPacket({
      ...base,
      seq: (seq0 + k * size) >>> 0,
      id: ((base.id ?? 0x1234) + k) & 0xffff,
      payload: pattern(k === n - 1 ? last : size, k),
      flags: k === n - 1 ? (base.flags ?? TCP_ACK) : TCP_ACK,
    }));
}

function written(b: Batch, k: number): Uint8Array {
  const i = b.toWrite[k];
  return b.bufs[i].subarray(OFF, OFF + b.lens[i]);
}

function vhdr(b: Batch, k: number) {
  const h = newVirtioNetHdr();
  readVirtioNetHdr(b.bufs[b.toWrite[k]], OFF - 10, h);
  return h;
}

/** Asserts packet k of the batch is written unchanged, behind an all-zero virtio header. */
function assertPlain(b: Batch, k: number, original: Uint8Array): void {
  assertEquals(written(b, k), original);
  assertEquals(b.bufs[b.toWrite[k]].subarray(OFF - 10, OFF), new Uint8Array(10));
}

/** Asserts packet k is a super-packet that splits back into exactly `originals`. */
function assertMerged(b: Batch, k: number, originals: Uint8Array[]): void {
  const sup = written(b, k), h = vhdr(b, k);
  const v4 = sup[0] >> 4 === 4, ipLen = v4 ? 20 : 40;
  const tcpLen = (sup[ipLen + 12] >> 4) * 4;
  assertEquals(h, {
    flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6,
    hdrLen: ipLen + tcpLen,
    gsoSize: originals[0].length - ipLen - tcpLen,
    csumStart: ipLen,
    csumOffset: 16,
  });
  assertEquals(sup.length, originals.reduce((n, p) => n + p.length - ipLen - tcpLen, ipLen + tcpLen));
  if (v4) assertEquals(refChecksum(sup.subarray(0, 20)), 0, "IPv4 header checksum");
  // The TCP checksum field holds the folded pseudo-header sum (CHECKSUM_PARTIAL), as the kernel expects.
  const l4 = sup.length - ipLen;
  const pseudo = [...(v4 ? sup.slice(12, 20) : sup.slice(8, 40)), 0, 6, l4 >> 8, l4 & 255];
  assertEquals((sup[ipLen + 16] << 8) | sup[ipLen + 17], ~refChecksum(pseudo) & 0xffff);
  const out = Array.from({ length: 64 }, () => new Uint8Array(2000));
  const sizes = new Int32Array(64);
  const n = gsoSplit(sup, 0, sup.length, h, out, 0, sizes);
  assertEquals(n, originals.length);
  for (let s = 0; s < originals.length; s++) {
    const seg = out[s].subarray(0, sizes[s]);
    assert(checksumsValid(seg));
    assertEquals(seg, originals[s], `segment ${s} after GRO and split`);
  }
}

Deno.test("GRO: one TCP/IPv4 flow in order becomes one super-packet that splits back exactly", () => {
  const segs = segments({ v: 4, proto: "tcp", flags: TCP_ACK | TCP_PSH }, 5, 1400, 700);
  const b = coalesce(segs);
  assertEquals(b.toWrite, [0]);
  assertMerged(b, 0, segs);
  assert((written(b, 0)[33] & TCP_PSH) !== 0, "PSH of the last segment is on the super-packet");
});

Deno.test("GRO: TCP/IPv6 with timestamps, sequence numbers wrapping", () => {
  const segs = segments({ v: 6, proto: "tcp", options: TS_OPTION, seq: 0xffffffff - 1000 }, 4, 1368);
  const b = coalesce(segs);
  assertEquals(b.toWrite, [0]);
  assertMerged(b, 0, segs);
});

Deno.test("GRO: two interleaved flows give two super-packets, each in order", () => {
  const a = segments({ v: 4, proto: "tcp", sport: 1111 }, 3, 1000);
  const c = segments({ v: 4, proto: "tcp", sport: 2222 }, 3, 1000);
  const b = coalesce([a[0], c[0], a[1], c[1], a[2], c[2]]);
  assertEquals(b.toWrite, [0, 1]);
  assertMerged(b, 0, a);
  assertMerged(b, 1, c);
  // Same ports, other direction or other addresses: other flows too.
  const d = segments({ v: 4, proto: "tcp", dst: [10, 203, 0, 9] }, 2, 1000);
  const e = coalesce([a[0], d[1]]);
  assertEquals(e.toWrite, [0, 1]);
});

Deno.test("GRO: out of order, gaps, duplicates and other ACK numbers are not merged", () => {
  const s = segments({ v: 4, proto: "tcp" }, 4, 1000);
  let b = coalesce([s[1], s[0], s[2], s[3]]);
  // s[1] then s[0] (behind it): no merge; s[0] is now the latest, s[2] does not follow it.
  assertEquals(b.toWrite, [0, 1, 2]);
  assertPlain(b, 0, s[1]);
  assertPlain(b, 1, s[0]);
  assertMerged(b, 2, [s[2], s[3]]);
  b = coalesce([s[0], s[2]]); // a gap
  assertEquals(b.toWrite, [0, 1]);
  assertPlain(b, 0, s[0]);
  assertPlain(b, 1, s[2]);
  b = coalesce([s[0], s[0].slice(), s[1]]); // a duplicate ends the super-packet
  assertEquals(b.toWrite, [0, 1]);
  assertPlain(b, 0, s[0]);
  assertMerged(b, 1, [s[0], s[1]]);
  const otherAck = buildPacket({ v: 4, proto: "tcp", seq: 2000, ack: 99, payload: pattern(1000, 1) });
  b = coalesce([s[0], otherAck]);
  assertEquals(b.toWrite, [0, 1]);
});

Deno.test("GRO: SYN, FIN, RST, URG and pure ACKs are written as they are and end the flow's super-packet", () => {
  const s = segments({ v: 6, proto: "tcp" }, 3, 1000);
  for (const flags of [TCP_SYN | TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK, TCP_URG | TCP_ACK, 0]) {
    const odd = buildPacket({ v: 6, proto: "tcp", seq: 2000, flags, payload: pattern(1000, 1) });
    const b = coalesce([s[0], odd, s[2]]);
    assertEquals(b.toWrite, [0, 1, 2], `flags ${flags}`);
    assertPlain(b, 0, s[0]);
    assertPlain(b, 1, odd);
    assertPlain(b, 2, s[2]);
  }
  const pureAck = buildPacket({ v: 6, proto: "tcp", seq: 2000, payload: new Uint8Array(0) });
  const b = coalesce([s[0], pureAck, s[1]]);
  assertEquals(b.toWrite, [0, 1, 2]); // s[1] may not jump over the ACK written between
  const v4 = segments({ v: 4, proto: "tcp" }, 2, 1000);
  const ackWithIpOptions = buildPacket({
    v: 4,
    proto: "tcp",
    seq: 2000,
    ipOptions: [1, 1, 1, 1],
    payload: new Uint8Array(0),
  });
  assertEquals(coalesce([v4[0], ackWithIpOptions, v4[1]]).toWrite, [0, 1, 2]);
});

Deno.test("GRO: PSH or a short segment ends a super-packet; a larger segment is not appended", () => {
  const s = segments({ v: 4, proto: "tcp" }, 4, 1000);
  const psh = buildPacket({
    v: 4,
    proto: "tcp",
    seq: 2000,
    id: 0x1235,
    flags: TCP_ACK | TCP_PSH,
    payload: pattern(1000, 1),
  });
  let b = coalesce([s[0], psh, s[2], s[3]]);
  assertEquals(b.toWrite, [0, 2]);
  assertMerged(b, 0, [s[0], psh]);
  assertMerged(b, 1, [s[2], s[3]]);
  const short = segments({ v: 4, proto: "tcp" }, 2, 1000, 10);
  const after = buildPacket({ v: 4, proto: "tcp", seq: 2010, payload: pattern(1000, 2) });
  b = coalesce([...short, after]);
  assertEquals(b.toWrite, [0, 2]);
  assertMerged(b, 0, short);
  const big = buildPacket({ v: 4, proto: "tcp", seq: 2000, payload: pattern(1001, 1) });
  b = coalesce([s[0], big]);
  assertEquals(b.toWrite, [0, 1]);
});

Deno.test("GRO: a bad checksum, IPv4 options, other TTL, TOS or TCP options prevent merging", () => {
  const s = segments({ v: 4, proto: "tcp" }, 2, 1000);
  const bad = s[1].slice();
  bad[100] ^= 1;
  let b = coalesce([s[0], bad]);
  assertEquals(b.toWrite, [0, 1]);
  assertPlain(b, 1, bad);
  const badHead = s[0].slice();
  badHead[100] ^= 1;
  b = coalesce([badHead, s[1]]);
  assertEquals(b.toWrite, [0, 1]);
  assertPlain(b, 0, badHead);
  for (const change of [{ ttl: 63 }, { tos: 4 }, { options: TS_OPTION }, { ipOptions: [0x94, 4, 0, 0] }]) {
    const other = buildPacket({ v: 4, proto: "tcp", seq: 2000, payload: pattern(1000, 1), ...change });
    b = coalesce([s[0], other]);
    assertEquals(b.toWrite, [0, 1], JSON.stringify(change));
    assertPlain(b, 1, other);
  }
  const v6 = segments({ v: 6, proto: "tcp" }, 1, 1000)[0];
  const hop = buildPacket({ v: 6, proto: "tcp", seq: 2000, ttl: 1, payload: pattern(1000, 1) });
  assertEquals(coalesce([v6, hop]).toWrite, [0, 1]);
});

Deno.test("GRO: UDP, junk and fragments pass through; merging stops at 64 KiB and at the buffer's end", () => {
  const udp = buildPacket({ v: 4, proto: "udp", payload: pattern(500) });
  const junk = new Uint8Array(50).fill(0x45);
  const frag = segments({ v: 4, proto: "tcp" }, 2, 1000);
  frag[1] = frag[1].slice();
  frag[1][6] |= 0x20;
  let b = coalesce([udp, junk, ...frag]);
  assertEquals(b.toWrite, [0, 1, 2, 3]);
  assertPlain(b, 0, udp);
  assertPlain(b, 1, junk);
  const many = segments({ v: 4, proto: "tcp" }, 60, 1400);
  b = coalesce(many);
  // 40 + 46 * 1400 = 64440 bytes fit in 65535; the 47th segment would not.
  assertEquals(b.toWrite, [0, 46]);
  assertMerged(b, 0, many.slice(0, 46));
  assertMerged(b, 1, many.slice(46));
  b = coalesce(segments({ v: 4, proto: "tcp" }, 3, 1000), 2100); // room for two segments' payload
  assertEquals(b.toWrite, [0, 2]);
});
