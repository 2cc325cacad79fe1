/**
 * The server's per-packet address lookups and per-handshake address choice
 * (src/dataplane/address_table.ts, address_pool.ts): `deno bench bench/address_table_bench.ts`.
 * 1000 peers, each with an IPv4 address and its IPv6 mirror; the lookup a data packet costs (destination
 * owner, then the source check on the way in), and the lowest free address in a /8 whose lowest 100 000
 * addresses are held but one, against the linear scan it replaced.
 */
import { AddressTable } from "../src/dataplane/address_table.ts";
import { AddressPool } from "../src/dataplane/address_pool.ts";
import { IPV6_DESTINATION, IPV6_SOURCE } from "../src/net/ip_packet.ts";

const BASE = 0x0a000002;
const table = new AddressTable<number>();
const mirror = (i: number) => {
  const a = new Uint8Array(16);
  a[0] = 0xfd;
  new DataView(a.buffer).setUint32(12, 2 + i);
  return a;
};
for (let i = 0; i < 1000; i++) table.claim(i, BASE + i, mirror(i));
const v4 = new Uint32Array(1024).map((_, i) => BASE + ((i * 7) % 1000));
const v6 = Array.from({ length: 64 }, (_, i) => {
  const pkt = new Uint8Array(40);
  pkt.set(mirror((i * 13) % 1000), IPV6_SOURCE);
  pkt.set(mirror((i * 29) % 1000), IPV6_DESTINATION);
  return pkt;
});

let sink = 0;
Deno.bench("IPv4 destination owner + source check (per 1024 packets)", () => {
  for (let i = 0; i < v4.length; i++) {
    const owner = table.owner4(v4[i]);
    if (owner !== undefined && table.owner4(v4[(i + 1) & 1023]) === owner) sink++;
  }
});
Deno.bench("IPv6 destination owner + source check (per 1024 packets)", () => {
  for (let i = 0; i < 1024; i++) {
    const pkt = v6[i & 63];
    const owner = table.owner6(pkt, IPV6_DESTINATION);
    if (owner !== undefined && table.owner6(pkt, IPV6_SOURCE) === owner) sink++;
  }
});

// 100 000 clients hold the lowest addresses of 10.0.0.0/8; the last of them has left. (Ownership is a
// byte array here so the bench measures the search, not Map churn.)
const held = new Uint8Array(1 << 24);
const taken = (n: number) => held[n - BASE] === 1;
const pool = new AddressPool(BASE, 0x0afffffe);
held.fill(1, 0, 100_000);
pool.lowest(taken); // the mark walks past them once
held[99_999] = 0;
pool.free(BASE + 99_999);
Deno.bench("lowest free address, /8 with 100 000 clients: free list (take and give back)", () => {
  const a = pool.lowest(taken);
  held[a - BASE] = 1;
  held[a - BASE] = 0;
  pool.free(a);
  sink += a;
});
Deno.bench("lowest free address, same: linear scan (what it replaced)", () => {
  for (let n = BASE; n < 0x0afffffe; n++) {
    if (!taken(n)) {
      sink += n;
      break;
    }
  }
});
globalThis.addEventListener("unload", () => sink === -1 && console.log(sink));
