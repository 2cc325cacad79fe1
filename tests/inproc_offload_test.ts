/**
 * The offload path in process (channel TUNs with virtio_net_hdr, no root): a TSO super-packet read on the
 * client is split, sealed, opened and coalesced again on the server, byte-exact with valid checksums; a
 * packet with a partial checksum leaves complete; a plain packet passes behind a zero header.
 */
import { assert, assertEquals } from "./assert.ts";
import { Inproc } from "./fakes/inproc.ts";
import { icmpEcho } from "./fakes/icmp.ts";
import { buildPacket, checksumsValid, pattern, TCP_ACK, TCP_PSH, TS_OPTION } from "./packet_builder.ts";
import { gsoSplit } from "../src/dataplane/gso_split.ts";
import {
  newVirtioNetHdr,
  readVirtioNetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_LENGTH,
  type VirtioNetHdr,
  writeVirtioNetHdr,
} from "../src/dataplane/virtio_net_hdr.ts";
import { zeroDrops } from "../src/ops/status_report.ts";

const CLIENT = [10, 0, 0, 2], SERVER = [10, 0, 0, 1];

function withHeader(h: VirtioNetHdr, pkt: Uint8Array): Uint8Array {
  const b = new Uint8Array(VIRTIO_NET_HDR_LENGTH + pkt.length);
  writeVirtioNetHdr(b, 0, h);
  b.set(pkt, VIRTIO_NET_HDR_LENGTH);
  return b;
}

/** The IP packets behind the headers of what the server wrote, super-packets split again (the kernel's part). */
function segmentsOf(written: Uint8Array[]): { packets: Uint8Array[]; supers: number } {
  const packets: Uint8Array[] = [];
  let supers = 0;
  const h = newVirtioNetHdr(), out = Array.from({ length: 64 }, () => new Uint8Array(2048));
  const sizes = new Int32Array(64);
  for (const w of written) {
    readVirtioNetHdr(w, 0, h);
    const pkt = w.subarray(VIRTIO_NET_HDR_LENGTH);
    if (h.gsoType === VIRTIO_NET_HDR_GSO_NONE) {
      assertEquals(h.flags, 0, "a plain packet goes out with a complete checksum");
      packets.push(pkt);
      continue;
    }
    supers++;
    assertEquals(h.gsoType, VIRTIO_NET_HDR_GSO_TCPV4);
    assertEquals(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    const n = gsoSplit(pkt, 0, pkt.length, h, out, 0, sizes);
    assert(typeof n === "number", `server wrote a super-packet the splitter refuses: ${n}`);
    for (let i = 0; i < n; i++) packets.push(out[i].slice(0, sizes[i]));
  }
  return { packets, supers };
}

Deno.test("inproc offload: a 64 KiB TSO super-packet is split, carried and coalesced again, byte-exact", async () => {
  const n = await Inproc.start("auto", true, true);
  try {
    const a = await n.connectedClient("198.51.100.10");
    const gso = 1368, payload = pattern(gso * 47 + 500);
    const sup = buildPacket({
      v: 4,
      proto: "tcp",
      src: CLIENT,
      dst: SERVER,
      seq: 5000,
      flags: TCP_ACK | TCP_PSH,
      options: TS_OPTION,
      payload,
    });
    const h = newVirtioNetHdr();
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gsoType = VIRTIO_NET_HDR_GSO_TCPV4;
    h.hdrLen = 52;
    h.gsoSize = gso;
    h.csumStart = 20;
    h.csumOffset = 16;
    assert(a.tun.inject(withHeader(h, sup)));
    const written: Uint8Array[] = [];
    let got = 0;
    while (got < payload.length) {
      const w = (await n.server.tun.nextWritten())[0];
      written.push(w);
      const { packets } = segmentsOf([w]);
      for (const p of packets) got += p.length - 52;
    }
    const { packets, supers } = segmentsOf(written);
    assert(supers >= 1, "the server coalesced nothing");
    assert(written.length < packets.length, `${written.length} writes for ${packets.length} segments`);
    let seq = 5000;
    const joined = new Uint8Array(payload.length);
    let at = 0;
    for (const p of packets) {
      assert(checksumsValid(p), "segment checksum");
      const view = new DataView(p.buffer, p.byteOffset);
      assertEquals(view.getUint32(24), seq);
      joined.set(p.subarray(52), at);
      at += p.length - 52;
      seq += p.length - 52;
    }
    assertEquals(joined, payload);
    assertEquals(packets.at(-1)![33] & TCP_PSH, TCP_PSH, "PSH on the last segment");
    assertEquals(n.server.role.status().peers[0].drops, zeroDrops());
  } finally {
    await n.stop();
  }
});

Deno.test("inproc offload: a partial checksum is completed; a plain packet passes behind a zero header", async () => {
  const n = await Inproc.start("auto", true, true);
  try {
    const a = await n.connectedClient("198.51.100.10");
    const udp = buildPacket({ v: 4, proto: "udp", src: CLIENT, dst: SERVER, payload: pattern(999) });
    // What the kernel hands over with TUN_F_CSUM: the pseudo-header sum in place of the checksum.
    const partial = udp.slice();
    const h = newVirtioNetHdr();
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csumStart = 20;
    h.csumOffset = 6;
    const pseudo = pseudoSum(udp);
    partial[26] = pseudo >> 8;
    partial[27] = pseudo & 0xff;
    assert(a.tun.inject(withHeader(h, partial)));
    assertEquals(await n.server.tun.nextWritten(), [withHeader(newVirtioNetHdr(), udp)]);
    const ping = icmpEcho("10.0.0.2", "10.0.0.1", 7);
    assert(a.tun.inject(withHeader(newVirtioNetHdr(), ping)));
    assertEquals(await n.server.tun.nextWritten(), [withHeader(newVirtioNetHdr(), ping)]);
    // And back: the server's plain reply reaches the client behind a zero header.
    const reply = icmpEcho("10.0.0.1", "10.0.0.2", 7, true);
    assert(n.server.tun.inject(withHeader(newVirtioNetHdr(), reply)));
    assertEquals(await a.tun.nextWritten(), [withHeader(newVirtioNetHdr(), reply)]);
  } finally {
    await n.stop();
  }
});

/** The folded pseudo-header sum of an IPv4 UDP packet (addresses, protocol, UDP length), not inverted. */
function pseudoSum(pkt: Uint8Array): number {
  let s = 17 + (pkt.length - 20);
  for (let i = 12; i < 20; i += 2) s += (pkt[i] << 8) | pkt[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
