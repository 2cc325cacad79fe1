import { deepEqual as assertDeepEquals, equal as assertEquals, ok as assert } from "node:assert/strict";
import type { AeadBackend } from "../src/protocol/aead.ts";
import { selectAeadBackend } from "../src/dataplane/aead_select.ts";
import {
  COOKIE_REPLY_LENGTH,
  COOKIE_SECRET_ROTATION_MS,
  INITIATION_LENGTH,
  KEY_ID_PERIOD_MS,
  REKEY_GRACE_MS,
} from "../src/protocol/constants.ts";
import { CookieChecker } from "../src/protocol/cookie.ts";
import { endpointFromParts } from "../src/net/endpoint.ts";
import {
  type ClientHandshake,
  createInitiation,
  InitiationClock,
  type PendingInitiation,
  randomIndex,
  Responder,
  type ServerHandshake,
} from "../src/protocol/handshake.ts";
import { generateKey } from "../src/config/key_file.ts";
import { deriveHandshakeKey, type HandshakeKey } from "../src/protocol/keys.ts";
import { PeerSessions, Session } from "../src/protocol/session.ts";
import { type AssignedParams, INITIATION } from "../src/protocol/wire.ts";
import { receiveData } from "./receive_data.ts";

const backends: AeadBackend[] = [
  (await selectAeadBackend("openssl")).backend,
  (await selectAeadBackend("webcrypto")).backend,
];
const PARAMS: AssignedParams = {
  ipv4: { address: "10.0.0.2", prefix: 24 },
  ipv6: { address: "fd00::2", prefix: 64 },
  mtu: 1420,
  keepaliveSeconds: 25,
};
const clock = new InitiationClock();

function server(...keys: HandshakeKey[]): Responder {
  const r = new Responder();
  r.setKeys(keys);
  return r;
}

async function initiate(key: HandshakeKey, requested: string | null = null, timestamp = clock.next()) {
  return await createInitiation(key, { senderIndex: randomIndex(), requestedAddress: requested, timestamp });
}

/** Runs a whole handshake; fails the test on any refusal. */
async function handshake(
  key: HandshakeKey,
  responder: Responder,
): Promise<{ client: ClientHandshake; server: ServerHandshake; pending: PendingInitiation }> {
  const pending = await initiate(key, "10.0.0.2");
  const opened = await responder.openInitiation(pending.message);
  assert(opened.ok, `initiation refused: ${!opened.ok && opened.reason}`);
  assertEquals(opened.value.requestedAddress, "10.0.0.2");
  const answered = await responder.respond(opened.value, { senderIndex: randomIndex(), params: PARAMS });
  assert(answered.ok);
  const done = await pending.consumeResponse(answered.value.message);
  assert(done.ok, `response refused: ${!done.ok && done.reason}`);
  return { client: done.value, server: answered.value, pending };
}

async function roundTrip(from: Session, to: Session, text: string): Promise<void> {
  const pt = new TextEncoder().encode(text);
  const buf = new Uint8Array(13 + pt.length + 16);
  buf.set(pt, 13);
  let n = from.seal(buf, pt.length, 1);
  if (n instanceof Promise) n = await n;
  assertEquals(n, pt.length + 29);
  const m = await receiveData(to, buf, n, 1);
  assertEquals(m, pt.length);
  assertEquals(new TextDecoder().decode(buf.subarray(13, 13 + m)), text);
}

for (const backend of backends) {
  Deno.test(`two peers complete the handshake and exchange data both ways (${backend.kind})`, async () => {
    const key = await deriveHandshakeKey(generateKey());
    const { client, server: srv } = await handshake(key, server(key));
    assertDeepEquals(client.params, PARAMS);
    assertEquals(client.localIndex, srv.remoteIndex);
    assertEquals(client.remoteIndex, srv.localIndex);
    assertDeepEquals(client.keys, srv.keys);
    const c = await Session.create(backend, { ...client, isInitiator: true, now: 0 });
    const s = await Session.create(backend, { ...srv, isInitiator: false, now: 0 });
    assert(client.keys.initiatorToResponder.every((b) => b === 0), "raw keys wiped after keying");
    for (let i = 0; i < 5; i++) {
      await roundTrip(c, s, `hello server ${i}`);
      await roundTrip(s, c, `hello client ${i}`);
    }
    await roundTrip(c, s, ""); // keepalive
    c.dispose();
    s.dispose();
  });
}

Deno.test("each handshake yields fresh session keys (ephemeral on both sides)", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const a = await handshake(key, r), b = await handshake(key, r);
  assert(a.client.keys.initiatorToResponder.some((x, i) => x !== b.client.keys.initiatorToResponder[i]));
});

Deno.test("replays refused; timestamps must be within the window either way; a restart forgets nothing fresh", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const now = 1_800_000_000_000;
  const r = new Responder({ freshnessMs: 1000 });
  r.setKeys([key], now);
  const p = await initiate(key, null, now * 1000);
  assert((await r.openInitiation(p.message, now)).ok);
  assertEquals(r.checkInitiation(p.message, now), "replay", "the synchronous check already knows it");
  const again = await r.openInitiation(p.message, now);
  assert(!again.ok && again.reason === "replay");
  // Another client sharing the key, clock 0.5 s behind: accepted once.
  const behind = await initiate(key, null, (now - 500) * 1000);
  assert((await r.openInitiation(behind.message, now)).ok);
  // Older than the window: refused, however new for this key.
  const old = await initiate(key, null, (now - 1500) * 1000);
  const o = await r.openInitiation(old.message, now);
  assert(!o.ok && o.reason === "stale", `got ${!o.ok && o.reason}`);
  // Ahead of our clock by more than the window: refused, and it does not lock out honest clocks.
  const fut = await initiate(key, null, (now + 86_400_000) * 1000);
  const f = await r.openInitiation(fut.message, now);
  assert(!f.ok && f.reason === "unknown-key", "a day ahead is not even in the key id table");
  const soon = await initiate(key, null, (now + 1500) * 1000);
  const s2 = await r.openInitiation(soon.message, now);
  assert(!s2.ok && s2.reason === "future", `got ${!s2.ok && s2.reason}`);
  assert((await r.openInitiation((await initiate(key, null, now * 1000 + 7)).message, now)).ok);
  // Much later the replay is still refused; a wall clock stepping back revives nothing.
  const late = await r.openInitiation(p.message, now + 5000);
  assert(!late.ok && (late.reason === "stale" || late.reason === "replay"));
  const back = await r.openInitiation(behind.message, now - 10_000);
  assert(!back.ok);
  // After a restart (a fresh responder) anything older than now - window is refused.
  const restarted = new Responder({ freshnessMs: 1000 });
  restarted.setKeys([key], now + 5000);
  const r2 = await restarted.openInitiation(p.message, now + 5000);
  assert(!r2.ok && r2.reason === "stale");
});

Deno.test("each key has its own replay cache bound and rate limit", async () => {
  const a = await deriveHandshakeKey(generateKey()), b = await deriveHandshakeKey(generateKey());
  const now = Date.now();
  const r = new Responder({ maxRecentPerKey: 2, keyBurst: 100 });
  r.setKeys([a, b], now);
  assert((await r.openInitiation((await initiate(a, null, now * 1000)).message, now)).ok);
  assert((await r.openInitiation((await initiate(a, null, now * 1000 + 1)).message, now)).ok);
  const third = await r.openInitiation((await initiate(a, null, now * 1000 + 2)).message, now);
  assert(!third.ok && third.reason === "busy");
  assert((await r.openInitiation((await initiate(b, null, now * 1000 + 3)).message, now)).ok, "b unaffected");

  // Default rate: burst 5, then one per 20 ms; a flooding key does not slow another key.
  const q = new Responder();
  q.setKeys([a, b], now);
  let accepted = 0;
  for (let i = 0; i < 20; i++) {
    if ((await q.openInitiation((await initiate(a, null, now * 1000 + 10 + i)).message, now)).ok) accepted++;
  }
  assertEquals(accepted, 5);
  const limited = await q.openInitiation((await initiate(a, null, now * 1000 + 40)).message, now + 5);
  assert(!limited.ok && limited.reason === "busy");
  assert((await q.openInitiation((await initiate(a, null, now * 1000 + 41)).message, now + 25)).ok);
  assert((await q.openInitiation((await initiate(b, null, now * 1000 + 42)).message, now + 25)).ok);
  // Refused initiations (future, stale) take no token.
  const r3 = new Responder({ freshnessMs: 1000, keyBurst: 1 });
  r3.setKeys([a], now);
  for (let i = 0; i < 10; i++) {
    assert(!(await r3.openInitiation((await initiate(a, null, (now + 2000) * 1000 + i)).message, now)).ok);
  }
  assert((await r3.openInitiation((await initiate(a, null, now * 1000 + 50)).message, now)).ok);
});

Deno.test("key ids rotate with the period; the responder matches the previous, current and next one", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const now = 1_800_000_000_000 - (1_800_000_000_000 % KEY_ID_PERIOD_MS) + 1000; // early in a period
  const r = new Responder({ freshnessMs: 10 * KEY_ID_PERIOD_MS });
  r.setKeys([key], now);
  const idAt = async (ms: number) => {
    const m = (await initiate(key, null, ms * 1000)).message;
    return { id: Array.from(m.subarray(6, 14)).join(","), m };
  };
  const same1 = await idAt(now), same2 = await idAt(now + 1);
  assertEquals(same1.id, same2.id, "one period, one id");
  const next = await idAt(now + KEY_ID_PERIOD_MS);
  assert(next.id !== same1.id, "the next period has another id");
  assert(!(same1.m.subarray(6, 14).every((x, i) => x === key.keyId[i])), "the stable id is never sent");
  for (const skew of [-KEY_ID_PERIOD_MS, -1, 0, KEY_ID_PERIOD_MS, 2 * KEY_ID_PERIOD_MS - 2000]) {
    const k = r.checkInitiation((await idAt(now + skew)).m, now);
    assert(typeof k !== "string", `skew ${skew} ms refused: ${k}`);
  }
  for (const skew of [-KEY_ID_PERIOD_MS - 1001, 2 * KEY_ID_PERIOD_MS]) {
    assertEquals(r.checkInitiation((await idAt(now + skew)).m, now), "unknown-key", `skew ${skew}`);
  }
  // The table follows the clock without a call to setKeys.
  const later = now + 10 * KEY_ID_PERIOD_MS;
  assert(typeof r.checkInitiation((await idAt(later)).m, later) !== "string");
});

Deno.test("cookie reply: bound to the source and the initiation, readable only with the key", async () => {
  const key = await deriveHandshakeKey(generateKey()), other = await deriveHandshakeKey(generateKey());
  const jar = new CookieChecker(0);
  const from = endpointFromParts("192.0.2.7", 4000), elsewhere = endpointFromParts("192.0.2.8", 4000);
  const p = await initiate(key);
  assert(!jar.mac2Valid(p.message, from, 1), "no cookie yet");
  const reply = new Uint8Array(COOKIE_REPLY_LENGTH);
  assertEquals(jar.writeReply(key, p.message, from, 1, reply), COOKIE_REPLY_LENGTH);
  assert(COOKIE_REPLY_LENGTH < INITIATION_LENGTH, "no amplification");
  for (let bit = 0; bit < reply.length * 8; bit++) {
    const d = reply.slice();
    d[bit >> 3] ^= 1 << (bit & 7);
    assert(!p.consumeCookieReply(d).ok, `bit ${bit} accepted`);
  }
  const q = await initiate(other);
  assert(!q.consumeCookieReply(reply).ok, "another key cannot read it");
  const got = p.consumeCookieReply(reply);
  assert(got.ok);
  assert(jar.mac2Valid(p.message, from, 2), "the resent initiation carries MAC2");
  assert(!jar.mac2Valid(p.message, elsewhere, 2), "MAC2 is bound to the source");
  // A later initiation with the same cookie passes; after two rotations the cookie is dead.
  const later = await createInitiation(key, {
    senderIndex: 4,
    requestedAddress: null,
    timestamp: clock.next(),
    cookie: got.value,
  });
  assert(jar.mac2Valid(later.message, from, COOKIE_SECRET_ROTATION_MS + 10), "previous secret still valid");
  assert(!jar.mac2Valid(later.message, from, 2 * COOKIE_SECRET_ROTATION_MS + 20));
  // MAC2 changes nothing the responder authenticates.
  assert((await server(key).openInitiation(p.message)).ok);
});

Deno.test("wrong key gets no response: unknown key id, and a key id claimed with another key", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const stranger = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const a = await r.openInitiation((await initiate(stranger)).message);
  assert(!a.ok && a.reason === "unknown-key");
  // Forge: stranger's key but the server's key id in the header (MAC1 fails, synchronously)...
  const opts = { senderIndex: 1, requestedAddress: null, timestamp: clock.next() };
  const forged = await createInitiation(
    { ...stranger, sip: { ...stranger.sip, keyId: key.sip.keyId } },
    opts,
  );
  assertEquals(r.checkInitiation(forged.message), "auth");
  // ...and with the server's MAC1 key too (the AEAD tag fails).
  const sip = { ...stranger.sip, keyId: key.sip.keyId, mac1: key.sip.mac1 };
  const forged2 = await createInitiation({ ...stranger, sip }, { ...opts, timestamp: clock.next() });
  assert(typeof r.checkInitiation(forged2.message) !== "string");
  const b = await r.openInitiation(forged2.message);
  assert(!b.ok && b.reason === "auth");
});

Deno.test("every bit flip, truncation and extension of an initiation is refused", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const p = await initiate(key, "fd00::5");
  const m = p.message;
  assertEquals(m.length, INITIATION_LENGTH);
  // Every bit up to MAC2; MAC2 is checked only under load, by the cookie checker (test above).
  for (let bit = 0; bit < INITIATION.mac2 * 8; bit++) {
    const d = m.slice();
    d[bit >> 3] ^= 1 << (bit & 7);
    assert(!(await r.openInitiation(d)).ok, `bit ${bit} accepted`);
  }
  for (const n of [0, 1, 50, m.length - 1]) assert(!(await r.openInitiation(m.subarray(0, n))).ok);
  const longer = new Uint8Array(m.length + 1);
  longer.set(m);
  assert(!(await r.openInitiation(longer)).ok);
  assert((await r.openInitiation(m)).ok, "the original still passes");
});

Deno.test("every bit flip of a response is refused; the pending initiation survives forgeries", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const p = await initiate(key);
  const opened = await r.openInitiation(p.message);
  assert(opened.ok);
  const ans = await r.respond(opened.value, { senderIndex: 77, params: PARAMS });
  assert(ans.ok);
  const m = ans.value.message;
  for (let bit = 0; bit < m.length * 8; bit++) {
    const d = m.slice();
    d[bit >> 3] ^= 1 << (bit & 7);
    assert(!(await p.consumeResponse(d)).ok, `bit ${bit} accepted`);
  }
  assert(!(await p.consumeResponse(m.subarray(0, m.length - 1))).ok);
  const done = await p.consumeResponse(m);
  assert(done.ok);
  assertEquals(done.value.remoteIndex, 77);
});

Deno.test("the caller may reuse its receive buffer while a handshake step is pending", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const p = await initiate(key);
  const rx = new Uint8Array(1500);
  rx.set(p.message);
  const pendingOpen = r.openInitiation(rx.subarray(0, p.message.length));
  crypto.getRandomValues(rx); // next datagram lands in the same slot
  const opened = await pendingOpen;
  assert(opened.ok);
  const ans = await r.respond(opened.value, { senderIndex: 5, params: PARAMS });
  assert(ans.ok);
  rx.set(ans.value.message);
  const pendingDone = p.consumeResponse(rx.subarray(0, ans.value.message.length));
  crypto.getRandomValues(rx);
  const done = await pendingDone;
  assert(done.ok);
  assertDeepEquals(done.value.keys, ans.value.keys);
});

Deno.test("a response is bound to its initiation", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const a = await createInitiation(key, { senderIndex: 9, requestedAddress: null, timestamp: clock.next() });
  const b = await createInitiation(key, { senderIndex: 9, requestedAddress: null, timestamp: clock.next() });
  const opened = await r.openInitiation(a.message);
  assert(opened.ok);
  const ans = await r.respond(opened.value, { senderIndex: 1, params: PARAMS });
  assert(ans.ok);
  const wrong = await b.consumeResponse(ans.value.message);
  assert(!wrong.ok && wrong.reason === "auth");
  assert((await a.consumeResponse(ans.value.message)).ok);
});

Deno.test("fuzz: responder and initiator never throw on random or mutated datagrams", async () => {
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const p = await initiate(key);
  const opened = await r.openInitiation(p.message);
  assert(opened.ok);
  const ans = await r.respond(opened.value, { senderIndex: 3, params: PARAMS });
  assert(ans.ok);
  const seeds = [p.message, ans.value.message];
  for (let i = 0; i < 3000; i++) {
    let d: Uint8Array;
    if (i % 3 === 0) d = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 120)));
    else {
      d = seeds[i % 2].slice(0, Math.random() < 0.2 ? Math.floor(Math.random() * 100) : undefined);
      for (let k = 0; k < 1 + (i % 3); k++) {
        if (d.length) d[Math.floor(Math.random() * d.length)] ^= 1 + (i % 255);
      }
    }
    const a = await r.openInitiation(d);
    const b = await p.consumeResponse(d);
    const unchanged = seeds.some((s) => s.length === d.length && s.every((x, j) => x === d[j]));
    if (!unchanged) assert(!a.ok && !b.ok, "a mutated message must not authenticate");
  }
});

Deno.test("rekey: the old session keeps decrypting during the grace period", async () => {
  const backend = backends[0];
  const key = await deriveHandshakeKey(generateKey());
  const r = server(key);
  const clientSide = new PeerSessions(), serverSide = new PeerSessions();
  let t = 1000;
  // First handshake.
  const h1 = await handshake(key, r);
  const c1 = await Session.create(backend, { ...h1.client, isInitiator: true, now: t });
  const s1 = await Session.create(backend, { ...h1.server, isInitiator: false, now: t });
  clientSide.installInitiated(c1, t);
  serverSide.installResponded(s1);
  assertEquals(serverSide.sendSession(t), null, "responder may not send before confirmation");
  const send = async (from: PeerSessions, to: PeerSessions, now: number): Promise<number> => {
    const s = from.sendSession(now)!;
    const buf = new Uint8Array(64);
    const n = await s.seal(buf, 10, now);
    const dst = to.find(new DataView(buf.buffer).getUint32(1), now);
    if (dst === null) return -100;
    const m = await receiveData(dst, buf, n, now);
    if (m >= 0) to.confirm(dst, now);
    return m;
  };
  assertEquals(await send(clientSide, serverSide, t), 10);
  assertEquals(serverSide.current, s1, "first packet confirms the responder's session");
  assertEquals(await send(serverSide, clientSide, t), 10);
  // Rekey after 120 s.
  t += 120_000;
  assert(c1.needsRekey(t) && !s1.needsRekey(t));
  const inFlight = new Uint8Array(64);
  const n = await c1.seal(inFlight, 10, t); // sealed on the old session, still in flight
  const h2 = await handshake(key, r);
  const c2 = await Session.create(backend, { ...h2.client, isInitiator: true, now: t });
  const s2 = await Session.create(backend, { ...h2.server, isInitiator: false, now: t });
  clientSide.installInitiated(c2, t);
  serverSide.installResponded(s2);
  assertEquals(serverSide.sendSession(t), s1, "server keeps sending on the old session until confirmed");
  assertEquals(await send(clientSide, serverSide, t), 10);
  assertEquals(serverSide.current, s2);
  assertEquals(serverSide.previous, s1);
  // The in-flight packet arrives late but within the grace period.
  t += REKEY_GRACE_MS - 1;
  const old = serverSide.find(c1.remoteIndex, t);
  assertEquals(old, s1);
  assertEquals(await receiveData(old!, inFlight, n, t), 10);
  // After the grace period the old session is gone.
  t += 2;
  assertEquals(serverSide.find(c1.remoteIndex, t), null);
  const retired = serverSide.expire(t);
  assertDeepEquals(retired, [s1]);
  assertEquals(await send(serverSide, clientSide, t), 10, "new session works both ways");
  clientSide.clear();
  serverSide.clear();
});
