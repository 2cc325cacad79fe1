/**
 * Cost of the user-space offload helpers of the data path (`--offload auto`): splitting a 64 KiB TCP/IPv4
 * GSO super-packet into 1368-byte segments with full checksums, and coalescing those segments back into
 * one super-packet (checksum check of each segment included), against a plain copy of the same bytes.
 *
 * Usage: deno run -A bench/offload_bench.ts [seconds per case, default 1]
 */
import { gsoSplit } from "../src/dataplane/gso_split.ts";
import { groCoalesce, GroTable } from "../src/dataplane/gro_coalesce.ts";
import { newVirtioNetHdr, VIRTIO_NET_HDR_GSO_TCPV4 } from "../src/dataplane/virtio_net_hdr.ts";
import { buildPacket, pattern, TS_OPTION } from "../tests/packet_builder.ts";

const SECONDS = Number(Deno.args[0] ?? 1);
const GSO = 1368, SEGMENTS = 47, OFF = 16;

const head = 20 + 32;
const sup = buildPacket({ v: 4, proto: "tcp", options: TS_OPTION, payload: pattern(GSO * SEGMENTS) });
const hdr = newVirtioNetHdr();
hdr.gsoType = VIRTIO_NET_HDR_GSO_TCPV4;
hdr.gsoSize = GSO;
hdr.hdrLen = head;
hdr.csumStart = 20;
hdr.csumOffset = 16;
const out = Array.from({ length: 64 }, () => new Uint8Array(OFF + 65535));
const sizes = new Int32Array(64);
if (gsoSplit(sup, 0, sup.length, hdr, out, OFF, sizes) !== SEGMENTS) throw new Error("split failed");
const segs = out.slice(0, SEGMENTS).map((b, i) => b.slice(OFF, OFF + sizes[i]));
const table = new GroTable(64), toWrite = new Int32Array(64), lens = new Int32Array(64);

function measure(name: string, step: () => void): void {
  const warm = performance.now() + 200;
  while (performance.now() < warm) step();
  let n = 0;
  const t0 = performance.now(), end = t0 + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 8; i++) step();
    n += 8;
  }
  const s = (performance.now() - t0) / 1000;
  const perSeg = (s / (n * SEGMENTS)) * 1e9;
  const gbps = (n * SEGMENTS * GSO * 8) / s / 1e9;
  console.log(
    `${name.padEnd(30)} ${perSeg.toFixed(0).padStart(6)} ns/segment  ${gbps.toFixed(2)} Gbit/s payload`,
  );
}

measure("copy (baseline)", () => {
  for (let i = 0; i < SEGMENTS; i++) out[i].set(segs[i], OFF);
});
measure("gsoSplit 64 KiB TCPv4", () => {
  gsoSplit(sup, 0, sup.length, hdr, out, OFF, sizes);
});
measure("groCoalesce 47 segments", () => {
  // Restore the segments (coalescing grows the head's buffer in place); the copy is in the figure.
  for (let i = 0; i < SEGMENTS; i++) {
    out[i].set(segs[i], OFF);
    lens[i] = segs[i].length;
  }
  if (groCoalesce(out, lens, SEGMENTS, OFF, table, toWrite) !== 1) throw new Error("not coalesced");
});
