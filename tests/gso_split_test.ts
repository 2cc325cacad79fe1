/**
 * Segmentation of GSO super-packets (src/dataplane/gso_split.ts): each segment must equal, byte for byte,
 * the packet a kernel without offloads would have sent (built independently by tests/packet_builder.ts),
 * with checksums valid under a reference computation; malformed or oversized input is refused.
 */
import { assert, assertEquals } from "./assert.ts";
import { completeChecksum, gsoSplit } from "../src/dataplane/gso_split.ts";
import {
  newVirtioNetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  type VirtioNetHdr,
} from "../src/dataplane/virtio_net_hdr.ts";
import {
  buildPacket,
  checksumsValid,
  type PacketSpec,
  pattern,
  TCP_ACK,
  TCP_CWR,
  TCP_FIN,
  TCP_PSH,
  TS_OPTION,
} from "./packet_builder.ts";

const OUT_OFFSET = 16; // room the caller keeps in front of each segment (our data header)

function hdrFor(spec: PacketSpec, gsoSize: number): VirtioNetHdr {
  const h = newVirtioNetHdr();
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.gsoType = spec.proto === "udp"
    ? VIRTIO_NET_HDR_GSO_UDP_L4
    : spec.v === 4
    ? VIRTIO_NET_HDR_GSO_TCPV4
    : VIRTIO_NET_HDR_GSO_TCPV6;
  h.gsoSize = gsoSize;
  h.csumStart = spec.v === 4 ? 20 : 40;
  h.csumOffset = spec.proto === "tcp" ? 16 : 6;
  h.hdrLen = h.csumStart + (spec.proto === "tcp" ? 20 + (spec.options?.length ?? 0) : 8);
  return h;
}

/** What segment `k` of `n` must be: the super-packet's headers with this slice, seq, ID and flags. */
function expectedSegment(spec: PacketSpec, gso: number, k: number, n: number): Uint8Array {
  const flags = spec.flags ?? TCP_ACK;
  const segFlags = (flags & ~(k < n - 1 ? TCP_FIN | TCP_PSH : 0)) & ~(k > 0 ? TCP_CWR : 0);
  return buildPacket({
    ...spec,
    payload: spec.payload.subarray(k * gso, Math.min((k + 1) * gso, spec.payload.length)),
    seq: ((spec.seq ?? 1000) + k * gso) >>> 0,
    id: ((spec.id ?? 0x1234) + k) & 0xffff,
    flags: segFlags,
  });
}

/** Splits the super-packet of `spec` (placed at an offset inside a larger buffer) and checks every segment. */
function checkSplit(spec: PacketSpec, gso: number): void {
  const sup = buildPacket(spec);
  const buf = new Uint8Array(sup.length + 40);
  buf.set(sup, 30);
  const before = buf.slice();
  const out = Array.from({ length: 64 }, () => new Uint8Array(OUT_OFFSET + 1500 + 100));
  const sizes = new Int32Array(64);
  const n = gsoSplit(buf, 30, sup.length, hdrFor(spec, gso), out, OUT_OFFSET, sizes);
  const want = Math.ceil(spec.payload.length / gso);
  assertEquals(n, want);
  assertEquals(buf, before, "the input was modified");
  for (let k = 0; k < want; k++) {
    const seg = out[k].subarray(OUT_OFFSET, OUT_OFFSET + sizes[k]);
    assert(checksumsValid(seg), `segment ${k}: checksum invalid`);
    assertEquals(seg, expectedSegment(spec, gso, k, want), `segment ${k} of ${want}`);
    assertEquals(out[k].subarray(0, OUT_OFFSET), new Uint8Array(OUT_OFFSET), "wrote before outOffset");
  }
}

Deno.test("gsoSplit: TCP over IPv4 with options; last segment short; FIN+PSH on the last, CWR on the first", () => {
  checkSplit({
    v: 4,
    proto: "tcp",
    options: TS_OPTION,
    payload: pattern(4000),
    flags: TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR,
  }, 1368);
});

Deno.test("gsoSplit: TCP over IPv6, exact multiple of the segment size, sequence number wrapping", () => {
  checkSplit({
    v: 6,
    proto: "tcp",
    payload: pattern(1380 * 5),
    seq: 0xffffffff - 2000,
    flags: TCP_ACK | TCP_PSH,
  }, 1380);
  checkSplit({ v: 6, proto: "tcp", options: TS_OPTION, payload: pattern(60000, 3), id: 0xfffe }, 1348);
});

Deno.test("gsoSplit: IPv4 ID wraps; one segment when the payload fits", () => {
  checkSplit({ v: 4, proto: "tcp", payload: pattern(9000), id: 0xfffe }, 1400);
  checkSplit({ v: 4, proto: "tcp", payload: pattern(100) }, 1400);
});

Deno.test("gsoSplit: UDP over IPv4 and IPv6, lengths and checksums per segment, odd sizes", () => {
  checkSplit({ v: 4, proto: "udp", payload: pattern(3001) }, 1000);
  checkSplit({ v: 6, proto: "udp", payload: pattern(4444, 9) }, 1231);
});

Deno.test("gsoSplit: refuses what it cannot split, without writing past the buffers", () => {
  const spec: PacketSpec = { v: 4, proto: "tcp", payload: pattern(3000) };
  const sup = buildPacket(spec);
  const out = Array.from({ length: 4 }, () => new Uint8Array(1600));
  const sizes = new Int32Array(4);
  const split = (p: Uint8Array, h: VirtioNetHdr, o = out, len = p.length) =>
    gsoSplit(p, 0, len, h, o, 0, sizes);
  const h = hdrFor(spec, 1000);
  assertEquals(split(sup, h), 3);
  assertEquals(split(sup, { ...h, gsoType: VIRTIO_NET_HDR_GSO_NONE }), "unsupported");
  assertEquals(split(sup, { ...h, gsoType: 2 }), "unsupported"); // GSO_UDP (UFO)
  assertEquals(split(sup, { ...h, gsoType: VIRTIO_NET_HDR_GSO_TCPV6 }), "malformed");
  assertEquals(split(sup, { ...h, gsoSize: 0 }), "malformed");
  assertEquals(split(sup, { ...h, gsoSize: 100 }), "no-room"); // 30 segments, 4 buffers
  assertEquals(split(sup, h, [out[0], out[1], new Uint8Array(500)]), "no-room");
  assertEquals(split(sup, h, out, 30), "malformed"); // truncated inside the TCP header
  assertEquals(split(sup, h, out, 40), "malformed"); // headers only, no payload
  assertEquals(split(buildPacket({ ...spec, proto: "udp" }), h), "malformed"); // TCPV4 but UDP inside
  const frag = sup.slice();
  frag[6] |= 0x20; // more fragments
  assertEquals(split(frag, h), "malformed");
  const v6 = buildPacket({ ...spec, v: 6 });
  v6[6] = 0; // hop-by-hop extension header first
  assertEquals(split(v6, hdrFor({ ...spec, v: 6 }, 1000)), "unsupported");
  const junk = new Uint8Array(100).fill(0x33);
  assertEquals(split(junk, h), "malformed");
});

Deno.test("gsoSplit: segments of a packet with IPv4 options keep them", () => {
  checkSplit({ v: 4, proto: "tcp", ipOptions: [0x94, 4, 0, 0], payload: pattern(2500) }, 1200);
});

Deno.test("completeChecksum: a plain packet with a partial checksum gets the full one", () => {
  for (
    const spec of [
      { v: 4, proto: "tcp", options: TS_OPTION, payload: pattern(999) },
      { v: 6, proto: "udp", payload: pattern(1001) },
    ] as PacketSpec[]
  ) {
    const full = buildPacket(spec);
    const partial = full.slice();
    const ipLen = spec.v === 4 ? 20 : 40, at = ipLen + (spec.proto === "tcp" ? 16 : 6);
    // What the kernel leaves there: the folded pseudo-header sum (addresses, protocol, length).
    const pseudo = [
      ...(spec.v === 4 ? full.slice(12, 20) : full.slice(8, 40)),
      0,
      spec.proto === "tcp" ? 6 : 17,
    ];
    pseudo.push((full.length - ipLen) >> 8, (full.length - ipLen) & 255);
    let s = 0;
    for (let i = 0; i < pseudo.length; i += 2) s += (pseudo[i] << 8) + pseudo[i + 1];
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    partial[at] = s >> 8;
    partial[at + 1] = s & 255;
    const h = { ...hdrFor(spec, 0), gsoType: VIRTIO_NET_HDR_GSO_NONE };
    assert(completeChecksum(partial, 0, partial.length, h));
    assertEquals(partial, full);
    assertEquals(completeChecksum(partial, 0, ipLen + 2, h), false);
  }
});
