import { equal as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { generateKey } from "../src/config/key_file.ts";
import { deriveHandshakeKey, deriveSessionKeys } from "../src/protocol/keys.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

// Fixed vectors, cross-checked once against an independent RFC 5869 HKDF (Python hmac/hashlib).
Deno.test("handshake key and key id: fixed vector", async () => {
  const hk = await deriveHandshakeKey(Uint8Array.from({ length: 32 }, (_, i) => i));
  assertEquals(hex(hk.secret), "cc7c9e72c758cc56b1d85f923700cb498d93f524ab481acb4caf8a508ab45a5c");
  assertEquals(hex(hk.keyId), "d627a59d3475842d");
  assertEquals(hk.keyIdValue, 0xd627a59d3475842dn);
});

Deno.test("session keys: fixed vector", async () => {
  const secret = Uint8Array.from(
    "cc7c9e72c758cc56b1d85f923700cb498d93f524ab481acb4caf8a508ab45a5c".match(/../g)!,
    (h) => parseInt(h, 16),
  );
  const k = await deriveSessionKeys(new Uint8Array(32).fill(0x11), secret, new Uint8Array(32).fill(0x22));
  assertEquals(
    hex(k.initiatorToResponder),
    "d5c8523fe32c1da194fe0d17c260d203754b198953f3902f0c4800ec150bad4f",
  );
  assertEquals(
    hex(k.responderToInitiator),
    "04d1a68f988565c62225177269edf1b745332e0bf86f60cab3bb27908eada318",
  );
  const k2 = await deriveSessionKeys(new Uint8Array(32).fill(0x11), secret, new Uint8Array(32).fill(0x23));
  assert(hex(k2.initiatorToResponder) !== hex(k.initiatorToResponder), "transcript must change the keys");
});

Deno.test("different keys give different key ids and handshake keys", async () => {
  const a = await deriveHandshakeKey(generateKey()), b = await deriveHandshakeKey(generateKey());
  assert(a.keyIdValue !== b.keyIdValue);
  assert(hex(a.secret) !== hex(b.secret));
  await rejects(() => deriveHandshakeKey(new Uint8Array(31)), RangeError);
});
