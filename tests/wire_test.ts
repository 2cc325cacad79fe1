import {
  deepEqual as assertDeepEquals,
  equal as assertEquals,
  ok as assert,
  throws,
} from "node:assert/strict";
import {
  COOKIE_REPLY_LENGTH,
  DATA_OVERHEAD,
  INITIATION_LENGTH,
  MSG_COOKIE_REPLY,
  MSG_DATA,
  MSG_INITIATION,
  MSG_RESPONSE,
  RESPONSE_LENGTH,
} from "../src/protocol/constants.ts";
import {
  type AssignedParams,
  classify,
  decodeInitiationPayload,
  decodeResponsePayload,
  encodeInitiationHeader,
  encodeInitiationPayload,
  encodeResponseHeader,
  encodeResponsePayload,
  INITIATION,
  parseCookieReplyIndex,
  parseInitiationHeader,
  parseResponseHeader,
  readCounter,
  readReceiverIndex,
  writeCookieReplyHeader,
  writeDataHeader,
} from "../src/protocol/wire.ts";

Deno.test("sizes: response and cookie reply smaller than initiation (no amplification)", () => {
  assertEquals(INITIATION_LENGTH, 115);
  assertEquals(RESPONSE_LENGTH, 97);
  assertEquals(COOKIE_REPLY_LENGTH, 38);
  assert(RESPONSE_LENGTH <= INITIATION_LENGTH);
  assert(COOKIE_REPLY_LENGTH <= INITIATION_LENGTH);
  assertEquals(INITIATION.mac1, 99);
  assertEquals(INITIATION.mac2, 107);
});

Deno.test("data header round trip incl. counters above 2^32", () => {
  const b = new Uint8Array(64);
  for (const c of [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
    writeDataHeader(b, 0xdeadbeef, c);
    assertEquals(b[0], MSG_DATA);
    assertEquals(readReceiverIndex(b), 0xdeadbeef);
    assertEquals(readCounter(b), c);
    assertEquals(Number(new DataView(b.buffer).getBigUint64(5)), c, "big-endian");
  }
  b.fill(0xff, 5, 13);
  assertEquals(readCounter(b), -1, "2^64-1 is not a valid counter");
});

Deno.test("classify: type and length rules", () => {
  const b = new Uint8Array(200);
  b[0] = MSG_DATA;
  assertEquals(classify(b, DATA_OVERHEAD), MSG_DATA);
  assertEquals(classify(b, DATA_OVERHEAD - 1), "short");
  b[0] = MSG_INITIATION;
  assertEquals(classify(b, INITIATION_LENGTH), MSG_INITIATION);
  assertEquals(classify(b, INITIATION_LENGTH - 1), "short");
  assertEquals(classify(b, INITIATION_LENGTH + 1), "long");
  b[0] = MSG_RESPONSE;
  assertEquals(classify(b, RESPONSE_LENGTH), MSG_RESPONSE);
  assertEquals(classify(b, RESPONSE_LENGTH + 1), "long");
  b[0] = MSG_COOKIE_REPLY;
  assertEquals(classify(b, COOKIE_REPLY_LENGTH), MSG_COOKIE_REPLY);
  assertEquals(classify(b, COOKIE_REPLY_LENGTH - 1), "short");
  assertEquals(classify(b, COOKIE_REPLY_LENGTH + 1), "long");
  b[0] = 0;
  assertEquals(classify(b, 50), "type");
  assertEquals(classify(b, 0), "short");
  assertEquals(classify(b, 201), "short", "length beyond the buffer");
});

Deno.test("initiation header and payload round trip", () => {
  const keyId = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const eph = new Uint8Array(32).fill(9), nonce = new Uint8Array(12).fill(7);
  const h = encodeInitiationHeader(0x01020304, keyId, eph, nonce);
  const msg = new Uint8Array(INITIATION_LENGTH);
  msg.set(h);
  const p = parseInitiationHeader(msg);
  assert(typeof p !== "string");
  assertEquals(p.senderIndex, 0x01020304);
  assertEquals(p.keyId, 0x0102030405060708n);
  assertDeepEquals(p.ephemeral, eph);
  assertDeepEquals(p.nonce, nonce);
  assertDeepEquals(p.aad, h);
  for (const req of [null, "10.0.0.7", "fd00::7"]) {
    const pl = decodeInitiationPayload(
      encodeInitiationPayload({ timestamp: 1_700_000_000_123_456, requestedAddress: req }),
    );
    assertDeepEquals(pl, { timestamp: 1_700_000_000_123_456, requestedAddress: req });
  }
  const enc = encodeInitiationPayload({ timestamp: 5, requestedAddress: "10.0.0.7" });
  enc[20] = 1; // non-zero padding
  assertEquals(decodeInitiationPayload(enc), "payload");
  enc[20] = 0;
  enc[8] = 5; // bad family
  assertEquals(decodeInitiationPayload(enc), "payload");
  throws(() => encodeInitiationPayload({ timestamp: 1, requestedAddress: "nope" }), RangeError);
  msg[1] = 2;
  assertEquals(parseInitiationHeader(msg), "version");
});

Deno.test("cookie reply header: length, type, version, receiver index", () => {
  const d = new Uint8Array(COOKIE_REPLY_LENGTH);
  writeCookieReplyHeader(d, 0xa1b2c3d4);
  assertEquals(parseCookieReplyIndex(d), 0xa1b2c3d4);
  assertEquals(parseCookieReplyIndex(d.subarray(0, 37)), "short");
  d[1] = 9;
  assertEquals(parseCookieReplyIndex(d), "version");
  d[0] = MSG_RESPONSE;
  assertEquals(parseCookieReplyIndex(d), "short");
});

Deno.test("response header and payload round trip; invalid params refused", () => {
  const h = encodeResponseHeader(11, 22, new Uint8Array(32).fill(1), new Uint8Array(12).fill(2));
  const msg = new Uint8Array(RESPONSE_LENGTH);
  msg.set(h);
  const p = parseResponseHeader(msg);
  assert(typeof p !== "string");
  assertEquals(p.senderIndex, 11);
  assertEquals(p.receiverIndex, 22);
  const params: AssignedParams[] = [
    { ipv4: { address: "10.0.0.2", prefix: 24 }, ipv6: null, mtu: 1420, keepaliveSeconds: 25 },
    { ipv4: null, ipv6: { address: "fd00::2", prefix: 64 }, mtu: 1280, keepaliveSeconds: 0 },
    {
      ipv4: { address: "10.9.8.7", prefix: 32 },
      ipv6: { address: "fd00:1::9", prefix: 128 },
      mtu: 9000,
      keepaliveSeconds: 65535,
    },
  ];
  for (const pr of params) assertDeepEquals(decodeResponsePayload(encodeResponsePayload(pr)), pr);
  const bad: AssignedParams[] = [
    { ipv4: null, ipv6: null, mtu: 1420, keepaliveSeconds: 25 },
    { ipv4: { address: "10.0.0.2", prefix: 33 }, ipv6: null, mtu: 1420, keepaliveSeconds: 25 },
    { ipv4: { address: "fd00::1", prefix: 24 }, ipv6: null, mtu: 1420, keepaliveSeconds: 25 },
    { ipv4: null, ipv6: { address: "fd00::2", prefix: 64 }, mtu: 1000, keepaliveSeconds: 25 },
    { ipv4: { address: "10.0.0.2", prefix: 24 }, ipv6: null, mtu: 100, keepaliveSeconds: 25 },
  ];
  for (const b of bad) throws(() => encodeResponsePayload(b), RangeError, JSON.stringify(b));
  const enc = encodeResponsePayload(params[0]);
  enc[0] |= 4;
  assertEquals(decodeResponsePayload(enc), "payload");
});

Deno.test("fuzz: parsers are total on random and mutated datagrams", () => {
  const seeds: Uint8Array[] = [
    (() => {
      const m = new Uint8Array(INITIATION_LENGTH);
      m.set(encodeInitiationHeader(1, new Uint8Array(8), new Uint8Array(32), new Uint8Array(12)));
      return m;
    })(),
    (() => {
      const m = new Uint8Array(RESPONSE_LENGTH);
      m.set(encodeResponseHeader(1, 2, new Uint8Array(32), new Uint8Array(12)));
      return m;
    })(),
    (() => {
      const m = new Uint8Array(100);
      writeDataHeader(m, 5, 6);
      return m;
    })(),
    encodeInitiationPayload({ timestamp: 1, requestedAddress: "10.0.0.1" }),
    encodeResponsePayload({
      ipv4: { address: "10.0.0.2", prefix: 24 },
      ipv6: null,
      mtu: 1420,
      keepaliveSeconds: 25,
    }),
  ];
  let seen = 0;
  for (let i = 0; i < 20_000; i++) {
    let d: Uint8Array;
    if (i % 2 === 0) d = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 160)));
    else {
      const s = seeds[i % seeds.length];
      const len = Math.random() < 0.3 ? Math.floor(Math.random() * (s.length + 8)) : s.length;
      d = new Uint8Array(len);
      d.set(s.subarray(0, Math.min(len, s.length)));
      for (let k = 0; k < 1 + (i % 4); k++) if (len > 0) d[Math.floor(Math.random() * len)] ^= 1 << (i % 8);
      if (Math.random() < 0.5 && len > 0) d[0] = 1 + (i % 4);
    }
    const len = Math.floor(Math.random() * (d.length + 4)); // sometimes claims more than the buffer
    const c = classify(d, len);
    assert(
      typeof c === "string" || c === MSG_DATA || c === MSG_INITIATION || c === MSG_RESPONSE ||
        c === MSG_COOKIE_REPLY,
    );
    if (c === MSG_DATA) {
      readCounter(d);
      readReceiverIndex(d);
      seen++;
    }
    parseInitiationHeader(d);
    parseResponseHeader(d);
    parseCookieReplyIndex(d);
    decodeInitiationPayload(d);
    decodeResponsePayload(d);
  }
  assert(seen > 0, "fuzz reached the data branch");
});
