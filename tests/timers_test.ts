/** The peer timer rules (src/protocol/timers.ts) against a fake clock: every rule at and just before its edge. */
import { assert, assertEquals } from "./assert.ts";
import {
  DEFAULT_KEEPALIVE_SECONDS,
  PASSIVE_KEEPALIVE_MS,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_TIMEOUT_MS,
  UNANSWERED_TIMEOUT_MS,
} from "../src/protocol/constants.ts";
import {
  authenticatedReceived,
  dataReceived,
  dataSent,
  failoverDue,
  initiatorAction,
  type InitiatorTimes,
  nextRetryMs,
  type PeerTimes,
  rekeyDue,
  responderAction,
  sessionExpired,
} from "../src/protocol/timers.ts";
import { PeerSessions, REKEY_NEEDED, Session } from "../src/protocol/session.ts";
import { createWebCryptoBackend } from "../src/dataplane/aead_webcrypto.ts";

/** A fake monotonic clock starting at an arbitrary point. */
class FakeClock {
  t = 5_000_000;
  now = (): number => this.t;
  advance(ms: number): number {
    return this.t += ms;
  }
}

const freshPeer = (): PeerTimes => ({ lastSentAt: -Infinity, dataReceivedSince: -1, unansweredSince: -1 });
const idle = (keepaliveMs = 0): InitiatorTimes => ({
  pending: false,
  pendingSentAt: 0,
  retryMs: REKEY_TIMEOUT_MS,
  keepaliveMs,
});

async function session(isInitiator: boolean, now: number): Promise<Session> {
  const keys = {
    initiatorToResponder: new Uint8Array(32).fill(1),
    responderToInitiator: new Uint8Array(32).fill(2),
  };
  return await Session.create(createWebCryptoBackend(), {
    localIndex: 1,
    remoteIndex: 2,
    isInitiator,
    keys,
    now,
  });
}

Deno.test("rekey: the initiator's session asks for a new handshake at 120 s, not before", async () => {
  const clock = new FakeClock();
  const s = await session(true, clock.now());
  const t = idle(), p = freshPeer();
  clock.advance(REKEY_AFTER_TIME_MS - 1);
  assertEquals(initiatorAction(t, p, s, clock.now()), "none");
  clock.advance(1);
  assertEquals(REKEY_AFTER_TIME_MS, 120_000);
  assertEquals(initiatorAction(t, p, s, clock.now()), "rekey");
  // The responder never starts a rekey, whatever the age.
  const r = await session(false, 0);
  assert(!r.needsRekey(REJECT_AFTER_TIME_MS - 1));
});

Deno.test("rekey: counters used up on either side also ask for one", () => {
  assert(!rekeyDue(true, 0, REKEY_AFTER_MESSAGES - 1, -1, 0));
  assert(rekeyDue(true, 0, REKEY_AFTER_MESSAGES, -1, 0));
  assert(rekeyDue(true, 0, 0, REKEY_AFTER_MESSAGES, 0));
  assert(!rekeyDue(false, 0, REJECT_AFTER_MESSAGES, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS));
});

Deno.test("refusal: a session 180 s old is refused for sending and receiving; the client handshakes", async () => {
  const clock = new FakeClock();
  const s = await session(true, clock.now());
  const sessions = new PeerSessions();
  sessions.installInitiated(s, clock.now());
  clock.advance(REJECT_AFTER_TIME_MS - 1);
  assert(!sessionExpired(s.createdAt, clock.now()));
  assert(sessions.sendSession(clock.now()) === s);
  assert(s.prepareSeal(new Uint8Array(64), clock.now()) >= 0);
  clock.advance(1);
  assertEquals(REJECT_AFTER_TIME_MS, 180_000);
  assert(sessionExpired(s.createdAt, clock.now()));
  assertEquals(sessions.sendSession(clock.now()), null);
  assertEquals(s.prepareSeal(new Uint8Array(64), clock.now()), REKEY_NEEDED);
  assert(s.checkReceive(new Uint8Array(64), clock.now()) < 0);
  assertEquals(sessions.expire(clock.now()).length, 1);
  assertEquals(
    initiatorAction(idle(), freshPeer(), sessions.sendSession(clock.now()), clock.now()),
    "no-session",
  );
});

Deno.test("passive keepalive: data received and not answered is answered within 10 s", () => {
  const clock = new FakeClock();
  const p = freshPeer();
  dataReceived(p, clock.now());
  clock.advance(3000);
  dataReceived(p, clock.now()); // a later packet does not move the first one
  clock.advance(PASSIVE_KEEPALIVE_MS - 3000 - 1);
  assertEquals(responderAction(true, p, clock.now()), "none");
  clock.advance(1);
  assertEquals(PASSIVE_KEEPALIVE_MS, 10_000);
  assertEquals(responderAction(true, p, clock.now()), "keepalive");
  assertEquals(responderAction(false, p, clock.now()), "none", "no keepalive without a live session");
  const live = { needsRekey: () => false };
  assertEquals(initiatorAction(idle(), p, live, clock.now()), "keepalive", "the client answers too");
  // Anything sent (the keepalive itself) answers it.
  dataSent(p, 0, clock.now());
  clock.advance(PASSIVE_KEEPALIVE_MS * 2);
  assertEquals(responderAction(true, p, clock.now()), "none");
  assertEquals(initiatorAction(idle(), p, live, clock.now()), "none");
});

Deno.test("keepalive interval: the client sends one after the interval without sending", () => {
  const clock = new FakeClock();
  const p = freshPeer(), live = { needsRekey: () => false };
  const t = idle(DEFAULT_KEEPALIVE_SECONDS * 1000);
  dataSent(p, 0, clock.now());
  clock.advance(t.keepaliveMs - 1);
  assertEquals(initiatorAction(t, p, live, clock.now()), "none");
  clock.advance(1);
  assertEquals(initiatorAction(t, p, live, clock.now()), "keepalive");
  dataSent(p, 100, clock.now());
  assertEquals(initiatorAction(t, p, live, clock.now()), "none", "a data packet resets the interval");
  clock.advance(t.keepaliveMs * 10);
  assertEquals(initiatorAction(idle(0), { ...p, unansweredSince: -1 }, live, clock.now()), "none", "0 = off");
});

Deno.test("retry backoff: an unanswered initiation is retried after 0.5, 1, 2, 4, 8, 16, 30, 30 s", () => {
  const clock = new FakeClock();
  let retryMs = REKEY_TIMEOUT_MS;
  const waits: number[] = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    const sentAt = clock.now();
    let waited = 0;
    while (
      initiatorAction(
        { pending: true, pendingSentAt: sentAt, retryMs, keepaliveMs: 0 },
        freshPeer(),
        null,
        clock.now(),
      ) !== "retry"
    ) {
      clock.advance(250);
      waited += 250;
      assert(waited <= 60_000, "never retried");
    }
    waits.push(waited);
    retryMs = nextRetryMs(retryMs);
  }
  assertEquals(waits, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
});

Deno.test("pending: nothing else happens while an initiation is out, even with the session expired", () => {
  const p = freshPeer();
  dataReceived(p, 0);
  dataSent(p, 100, 0);
  const t = { pending: true, pendingSentAt: 0, retryMs: REKEY_TIMEOUT_MS, keepaliveMs: 1000 };
  assertEquals(initiatorAction(t, p, null, REKEY_TIMEOUT_MS - 1), "none");
  assertEquals(initiatorAction(t, p, { needsRekey: () => true }, REKEY_TIMEOUT_MS - 1), "none");
});

Deno.test("stopped answering: data unanswered for 15 s makes the client handshake again", () => {
  const clock = new FakeClock();
  const p = freshPeer(), live = { needsRekey: () => false };
  dataSent(p, 0, clock.now());
  clock.advance(UNANSWERED_TIMEOUT_MS * 2);
  assertEquals(initiatorAction(idle(), p, live, clock.now()), "none", "keepalives alone expect no answer");
  const first = clock.now();
  dataSent(p, 84, first);
  clock.advance(5000);
  dataSent(p, 84, clock.now()); // later data does not move the first unanswered send
  clock.advance(UNANSWERED_TIMEOUT_MS - 5000 - 1);
  assertEquals(initiatorAction(idle(), p, live, clock.now()), "none");
  clock.advance(1);
  assertEquals(UNANSWERED_TIMEOUT_MS, 15_000);
  assertEquals(initiatorAction(idle(), p, live, clock.now()), "unanswered");
  // Any authenticated datagram (a keepalive too) clears it.
  authenticatedReceived(p);
  assertEquals(p.unansweredSince, -1);
  assertEquals(initiatorAction(idle(), p, live, clock.now()), "none");
});

Deno.test("failover: with several servers, handshakes unanswered 15 s since the first attempt move on", () => {
  const clock = new FakeClock();
  const tryingSince = clock.now();
  clock.advance(UNANSWERED_TIMEOUT_MS - 1);
  assert(!failoverDue(tryingSince, clock.now()));
  clock.advance(1);
  assert(failoverDue(tryingSince, clock.now()));
});

Deno.test("order: a missing session goes before rekey, rekey before unanswered, unanswered before keepalive", () => {
  const p = freshPeer();
  dataSent(p, 84, 0);
  dataReceived(p, 0);
  const now = UNANSWERED_TIMEOUT_MS + PASSIVE_KEEPALIVE_MS;
  assertEquals(initiatorAction(idle(1), p, null, now), "no-session");
  assertEquals(initiatorAction(idle(1), p, { needsRekey: () => true }, now), "rekey");
  assertEquals(initiatorAction(idle(1), p, { needsRekey: () => false }, now), "unanswered");
  authenticatedReceived(p);
  assertEquals(initiatorAction(idle(1), p, { needsRekey: () => false }, now), "keepalive");
});
