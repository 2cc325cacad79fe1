/**
 * Per-packet cost of the server's route lookup for networks behind clients (src/dataplane/route_table.ts):
 * `deno bench bench/route_table_bench.ts`. 1000 peers with one /24 each plus /16 and /32 routes (three prefix
 * lengths), looked up by a spread of addresses, hits and misses.
 */
import { RouteTable } from "../src/dataplane/route_table.ts";
import { parseCidr } from "../src/net/cidr.ts";

const table = new RouteTable<number>();
for (let i = 0; i < 1000; i++) table.insert(parseCidr(`172.${16 + (i >> 8)}.${i & 255}.0/24`)!, i);
table.insert(parseCidr("192.168.0.0/16")!, 1000);
table.insert(parseCidr("203.0.113.7/32")!, 1001);
const addresses = new Uint32Array(1024);
for (let i = 0; i < addresses.length; i++) {
  // Half hits in the /24s, a quarter in the /16, a quarter misses.
  addresses[i] = i % 4 < 2
    ? ((172 << 24) | ((16 + (i % 4)) << 16) | ((i * 7) & 255) << 8 | 9) >>> 0
    : i % 4 === 2
    ? ((192 << 24) | (168 << 16) | i) >>> 0
    : ((10 << 24) | i) >>> 0;
}

let sink = 0;
Deno.bench("route table lookup4, 1002 routes in 3 prefix lengths (per 1024 lookups)", () => {
  for (let i = 0; i < addresses.length; i++) sink += table.lookup4(addresses[i]) ?? 0;
});
Deno.bench("empty table: the size4 check the server makes first (per 1024 lookups)", () => {
  const empty = new RouteTable<number>();
  for (let i = 0; i < addresses.length; i++) if (empty.size4 > 0) sink += empty.lookup4(addresses[i]) ?? 0;
});
globalThis.addEventListener("unload", () => sink === -1 && console.log(sink));
