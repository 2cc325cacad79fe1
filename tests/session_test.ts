import { deepEqual as assertDeepEquals, equal as assertEquals, ok as assert } from "node:assert/strict";
import type { AeadBackend } from "../src/protocol/aead.ts";
import { selectAeadBackend } from "../src/dataplane/aead_select.ts";
import {
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_GRACE_MS,
} from "../src/protocol/constants.ts";
import type { SessionKeys } from "../src/protocol/keys.ts";
import {
  DROP_AUTH,
  DROP_EXPIRED,
  DROP_LIMIT,
  DROP_REPLAY,
  dropReasonOf,
  PeerSessions,
  REKEY_NEEDED,
  Session,
} from "../src/protocol/session.ts";
import { writeDataHeader } from "../src/protocol/wire.ts";
import { receiveData } from "./receive_data.ts";

const backends: AeadBackend[] = [
  (await selectAeadBackend("openssl")).backend,
  (await selectAeadBackend("webcrypto")).backend,
];
const unhex = (h: string) => Uint8Array.from(h.match(/../g)!, (x) => parseInt(x, 16));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function keys(seed?: number): SessionKeys {
  if (seed === undefined) {
    return {
      initiatorToResponder: crypto.getRandomValues(new Uint8Array(32)),
      responderToInitiator: crypto.getRandomValues(new Uint8Array(32)),
    };
  }
  return {
    initiatorToResponder: new Uint8Array(32).fill(seed),
    responderToInitiator: new Uint8Array(32).fill(seed + 1),
  };
}

async function pair(backend: AeadBackend, k: SessionKeys = keys(), now = 0): Promise<[Session, Session]> {
  const copy = (): SessionKeys => ({
    initiatorToResponder: k.initiatorToResponder.slice(),
    responderToInitiator: k.responderToInitiator.slice(),
  });
  return [
    await Session.create(backend, { localIndex: 1, remoteIndex: 2, isInitiator: true, keys: copy(), now }),
    await Session.create(backend, { localIndex: 2, remoteIndex: 1, isInitiator: false, keys: copy(), now }),
  ];
}

async function v<T>(r: T | Promise<T>): Promise<T> {
  return r instanceof Promise ? await r : r;
}

/** A batch as the data path receives it: every pre-check, then every tag check, then every commit. */
async function receiveBatch(s: Session, bufs: Uint8Array[], lens: Int32Array, now: number): Promise<void> {
  const counters = bufs.map((b) => s.checkReceive(b, now));
  const opened = await Promise.all(
    bufs.map((b, i) => counters[i] < 0 ? counters[i] : v(s.recvKey.openOne(b, lens[i]))),
  );
  for (let i = 0; i < bufs.length; i++) {
    if (counters[i] < 0) lens[i] = counters[i];
    else if (opened[i] < 0) lens[i] = DROP_AUTH;
    else lens[i] = s.acceptCounter(counters[i]) ? opened[i] : DROP_REPLAY;
  }
}

function plain(len: number): Uint8Array {
  const b = new Uint8Array(13 + len + 16);
  crypto.getRandomValues(b.subarray(13, 13 + len));
  return b;
}

for (const backend of backends) {
  const kind = backend.kind;

  Deno.test(`fixed data packet vector (${kind})`, async () => {
    // Session keys from the fixed key-derivation vector in keys_test.ts.
    const k: SessionKeys = {
      initiatorToResponder: unhex("d5c8523fe32c1da194fe0d17c260d203754b198953f3902f0c4800ec150bad4f"),
      responderToInitiator: unhex("04d1a68f988565c62225177269edf1b745332e0bf86f60cab3bb27908eada318"),
    };
    const s = await Session.create(backend, {
      localIndex: 7,
      remoteIndex: 0x01020304,
      isInitiator: true,
      keys: k,
      now: 0,
    });
    s.nextCounter = 5;
    const buf = new Uint8Array(64);
    buf.set(new TextEncoder().encode("ping"), 13);
    const n = await v(s.seal(buf, 4, 1));
    assertEquals(
      hex(buf.subarray(0, n)),
      "030102030400000000000000055abea79eb0ed8c6339e47177839d1fa9318162ab",
    );
    s.dispose();
  });

  Deno.test(`round trips both ways, keepalive, replay and wrong-session packets (${kind})`, async () => {
    const [c, s] = await pair(backend);
    for (const len of [0, 1, 100, 1420]) {
      const b = plain(len), orig = b.slice();
      const n = await v(c.seal(b, len, 1));
      assertEquals(n, len + 29);
      const copy = b.slice();
      assertEquals(await receiveData(s, b, n, 1), len);
      assertDeepEquals(b.subarray(13, 13 + len), orig.subarray(13, 13 + len));
      assertEquals(await receiveData(s, copy, n, 1), DROP_REPLAY, "replayed datagram");
      const back = plain(len);
      assertEquals(await receiveData(c, back, await v(s.seal(back, len, 1)), 1), len);
    }
    const [, other] = await pair(backend); // same indices, other keys
    const b = plain(30);
    const n = await v(c.seal(b, 30, 1));
    assertEquals(await receiveData(other, b.slice(), n, 1), DROP_AUTH, "another session's key");
    assertEquals(await receiveData(c, b.slice(), n, 1), DROP_AUTH, "own direction's packet reflected back");
    assertEquals(await receiveData(s, b, n, 1), 30);
    c.dispose();
    s.dispose();
    other.dispose();
  });

  Deno.test(`tampering: every bit, truncation, extension fail; window not advanced (${kind})`, async () => {
    const [c, s] = await pair(backend);
    const b = plain(20);
    const n = await v(c.seal(b, 20, 1));
    for (let bit = 0; bit < n * 8; bit++) {
      const d = b.slice();
      d[bit >> 3] ^= 1 << (bit & 7);
      const r = await receiveData(s, d, n, 1);
      assert(r < 0, `bit ${bit} accepted`);
    }
    for (const len of [0, 13, 28, n - 1]) assert((await receiveData(s, b.slice(), len, 1)) < 0);
    const longer = new Uint8Array(n + 1);
    longer.set(b.subarray(0, n));
    assert((await receiveData(s, longer, n + 1, 1)) < 0);
    assertEquals(s.hasReceived, false, "failed packets must not move the window");
    assertEquals(await receiveData(s, b, n, 1), 20);
    c.dispose();
    s.dispose();
  });

  Deno.test(`batches: seal 64, open 64 with a duplicate and a corrupt one (${kind})`, async () => {
    const [c, s] = await pair(backend);
    const bufs = Array.from({ length: 64 }, (_, i) => plain(i * 20));
    const lens = Int32Array.from({ length: 64 }, (_, i) => i * 20);
    // Sealed as the data path seals a batch: headers first (prepareSeal), then the AEAD per packet.
    for (let i = 0; i < 64; i++) assertEquals(c.prepareSeal(bufs[i], 1), i);
    await Promise.all(bufs.map((b, i) => v(c.sendKey.sealOne(b, lens[i]))));
    for (let i = 0; i < 64; i++) lens[i] += 29;
    bufs[63] = bufs[62].slice(); // duplicate counter in the same batch
    lens[63] = lens[62];
    bufs[5][20] ^= 0x80;
    await receiveBatch(s, bufs, lens, 1);
    for (let i = 0; i < 62; i++) assertEquals(lens[i], i === 5 ? DROP_AUTH : i * 20, `packet ${i}`);
    assertEquals(lens[62] === DROP_REPLAY || lens[63] === DROP_REPLAY, true);
    assertEquals(lens[62] === 62 * 20 || lens[63] === 62 * 20, true);
    c.dispose();
    s.dispose();
  });
}

Deno.test("reordered delivery within the window is accepted", async () => {
  const [c, s] = await pair(backends[0]);
  const sealed = [];
  for (let i = 0; i < 300; i++) {
    const b = plain(8);
    sealed.push([b, await v(c.seal(b, 8, 1))] as const);
  }
  sealed.reverse();
  for (const [b, n] of sealed) assertEquals(await receiveData(s, b, n, 1), 8);
  c.dispose();
  s.dispose();
});

Deno.test("counter limits: rekey wanted at 2^40, refused at the hard limit, both directions", async () => {
  const [c, s] = await pair(backends[0]);
  assert(!c.needsRekey(1));
  c.nextCounter = REKEY_AFTER_MESSAGES;
  assert(c.needsRekey(1), "initiator wants a rekey");
  assert(!s.needsRekey(1), "responder never initiates");
  const b = plain(4);
  const n = await v(c.seal(b, 4, 1));
  assertEquals(await receiveData(s, b, n, 1), 4, "2^40 still valid");
  c.nextCounter = REJECT_AFTER_MESSAGES;
  assertEquals(await v(c.seal(plain(4), 4, 1)), REKEY_NEEDED);
  assertEquals(c.prepareSeal(plain(4), 1), REKEY_NEEDED);
  c.nextCounter = REJECT_AFTER_MESSAGES - 1;
  assertEquals(c.prepareSeal(plain(1), 1), REJECT_AFTER_MESSAGES - 1, "the last counter is still given out");
  assertEquals(c.prepareSeal(plain(1), 1), REKEY_NEEDED, "a batch stops at the limit");
  // Receiver side: a forged header at the limit is refused before the tag check.
  const f = plain(4);
  writeDataHeader(f, 2, REJECT_AFTER_MESSAGES);
  assertEquals(s.checkReceive(f, 1), DROP_LIMIT);
  f.fill(0xff, 5, 13);
  assertEquals(s.checkReceive(f, 1), DROP_LIMIT);
  // The initiator also rekeys when the responder's counter gets high.
  const [c2, s2] = await pair(backends[0]);
  s2.nextCounter = REKEY_AFTER_MESSAGES;
  const r = plain(4);
  assertEquals(await receiveData(c2, r, await v(s2.seal(r, 4, 1)), 1), 4);
  assert(c2.needsRekey(1));
  for (const x of [c, s, c2, s2]) x.dispose();
});

Deno.test("timers: rekey after 120 s (initiator), refused for send and receive after 180 s", async () => {
  const [c, s] = await pair(backends[0], keys(), 1000);
  assert(!c.needsRekey(1000 + REKEY_AFTER_TIME_MS - 1));
  assert(c.needsRekey(1000 + REKEY_AFTER_TIME_MS));
  assert(!s.needsRekey(1000 + REKEY_AFTER_TIME_MS));
  const t = 1000 + REJECT_AFTER_TIME_MS;
  const b = plain(4);
  const n = await v(c.seal(b, 4, t - 1));
  assert(c.isExpired(t));
  assertEquals(await v(c.seal(plain(4), 4, t)), REKEY_NEEDED);
  assertEquals(await receiveData(s, b, n, t), DROP_EXPIRED);
  assertEquals(dropReasonOf(DROP_EXPIRED), "expired");
  assertEquals(dropReasonOf(DROP_REPLAY), "replay");
  c.dispose();
  s.dispose();
});

Deno.test("PeerSessions: responder confirmation, grace, expiry", async () => {
  const b = backends[0];
  const mk = (idx: number, now: number, init = false) =>
    Session.create(b, { localIndex: idx, remoteIndex: 100 + idx, isInitiator: init, keys: keys(idx), now });
  const p = new PeerSessions();
  const s1 = await mk(1, 0);
  assertDeepEquals(p.installResponded(s1), []);
  assertEquals(p.sendSession(0), null);
  assertEquals(p.find(1, 0), s1);
  p.confirm(s1, 5);
  assertEquals(p.sendSession(5), s1);
  const s2 = await mk(2, 10);
  p.installResponded(s2);
  const s3 = await mk(3, 20);
  assertDeepEquals(p.installResponded(s3), [s2], "an unconfirmed next is replaced");
  assertEquals(p.find(2, 20), null);
  assertDeepEquals(p.confirm(s1, 21), [], "confirming the current session changes nothing");
  p.confirm(s3, 30);
  assertEquals(p.current, s3);
  assertEquals(p.find(1, 30 + REKEY_GRACE_MS - 1), s1);
  assertEquals(p.find(1, 30 + REKEY_GRACE_MS), null);
  assertDeepEquals(p.expire(30 + REKEY_GRACE_MS), [s1]);
  assertDeepEquals(p.expire(20 + REJECT_AFTER_TIME_MS), [s3]);
  assertEquals(p.sendSession(20 + REJECT_AFTER_TIME_MS), null);
  const q = new PeerSessions();
  const i1 = await mk(4, 0, true), i2 = await mk(5, 50, true);
  q.installInitiated(i1, 0);
  q.installInitiated(i2, 50);
  assertEquals(q.sendSession(50), i2, "initiator switches at once");
  assertEquals(q.find(4, 60), i1);
  assertEquals(q.clear().length, 2);
});
