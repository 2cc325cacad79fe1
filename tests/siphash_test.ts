/** SipHash-2-4 against the reference vectors, and the per-source and per-key token buckets. */
import { equal as assertEquals, ok as assert } from "node:assert/strict";
import { sipHash32, sipHashInto, sipHashMatches, sipKey } from "../src/protocol/siphash.ts";
import { SourceRateLimiter, TokenBucket } from "../src/protocol/rate_limiter.ts";
import { endpointFromParts } from "../src/net/endpoint.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("SipHash-2-4: reference vectors (key 00..0f, message 00..n-1)", () => {
  const key = sipKey(Uint8Array.from({ length: 16 }, (_, i) => i));
  // From the SipHash paper's vectors.h, output bytes as stored (little-endian).
  const vectors: Record<number, string> = {
    0: "310e0edd47db6f72",
    1: "fd67dc93c539f874",
    7: "37d1018bf50002ab",
    8: "6224939a79f5f593",
    15: "e545be4961ca29a1",
    63: "724506eb4c328a95",
  };
  const out = new Uint8Array(8);
  for (const [n, want] of Object.entries(vectors)) {
    const m = Uint8Array.from({ length: Number(n) }, (_, i) => i);
    sipHashInto(key, m, 0, m.length, out, 0);
    assertEquals(hex(out), want, `length ${n}`);
    assert(sipHashMatches(key, m, 0, m.length, out, 0));
    out[7] ^= 1;
    assert(!sipHashMatches(key, m, 0, m.length, out, 0));
  }
  // A sub-range hashes like a copy of it.
  const big = Uint8Array.from({ length: 40 }, (_, i) => i);
  assertEquals(sipHash32(key, big, 0, 15), sipHash32(key, big.slice(0, 15), 0, 15));
});

Deno.test("token bucket: burst, then the rate", () => {
  const b = new TokenBucket(50, 5);
  let n = 0;
  for (let i = 0; i < 100; i++) if (b.take(1000)) n++;
  assertEquals(n, 5);
  assert(!b.take(1010));
  assert(b.take(1021), "one token per 20 ms");
  assert(!b.take(1022));
});

Deno.test("source rate limiter: per source, fixed size, IPv6 by /64", () => {
  const l = new SourceRateLimiter(16, 20, 5);
  const a = endpointFromParts("192.0.2.1", 1), a2 = endpointFromParts("192.0.2.1", 2);
  let n = 0;
  for (let i = 0; i < 50; i++) if (l.allow(i % 2 ? a : a2, 1000)) n++;
  assertEquals(n, 5, "ports of one address share a bucket");
  assert(l.allow(a, 1050), "20 a second");
  // Thousands of sources: memory stays 16 slots; some other source still has tokens.
  let others = 0;
  for (let i = 0; i < 5000; i++) {
    if (l.allow(endpointFromParts(`198.51.${i >> 8}.${i & 255}`, 9), 2000)) others++;
  }
  assert(others >= 16 * 5 && others < 5000, `allowed ${others}`);
  const l6 = new SourceRateLimiter(4096, 20, 1);
  assert(l6.allow(endpointFromParts("2001:db8::1", 1), 0));
  assert(!l6.allow(endpointFromParts("2001:db8::ffff:2", 1), 0), "same /64, same bucket");
});
