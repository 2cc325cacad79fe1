/**
 * The `vpn/1` handshake, I/O-free: the initiator (client) builds an initiation and consumes the response;
 * the responder (server) authenticates initiations and answers them. All crypto is WebCrypto:
 * X25519 ephemerals on both sides, AES-256-GCM under the handshake key, HKDF-SHA256 for session keys.
 *
 * The responder checks in two steps. `checkInitiation` is synchronous and costs at most one Map get and
 * two SipHash runs: length, type, version, the rotating key id (`key_id.ts`), MAC1, and the key's replay
 * cache. Only then may the caller queue `openInitiation` (one AES-GCM open); X25519 runs only for
 * authenticated, fresh, non-replayed initiations within the key's rate.
 *
 * Replay rule (the key may be shared by many clients whose clocks interleave): accept an authenticated
 * initiation iff its timestamp is within ±freshness of the responder's clock, its tag is not in its key's
 * replay cache, and its key has a token left (50 a second, burst 5). A cache entry is kept until its
 * timestamp falls below now - freshness, after which a replay fails the window check; the bucket bounds
 * how many entries one key can hold, and each key has its own cache, so no key can fill another's. After a
 * restart nothing is remembered, and the window alone refuses anything older than now - freshness.
 */
import {
  INITIATION_AUTH_LENGTH,
  INITIATION_FRESHNESS_MS,
  INITIATION_LENGTH,
  KEY_INITIATION_BURST,
  KEY_INITIATIONS_PER_SECOND,
  RECENT_INITIATIONS_PER_KEY,
} from "./constants.ts";
import { mac1Valid, openCookieReply, writeMac1, writeMac2 } from "./cookie.ts";
import { keyIdPeriod, KeyIdTable, writeWireKeyId } from "./key_id.ts";
import { deriveSessionKeys, type HandshakeKey, type SessionKeys } from "./keys.ts";
import { TokenBucket } from "./rate_limiter.ts";
import type { SipKey } from "./siphash.ts";
import {
  type AssignedParams,
  checkInitiation,
  decodeInitiationPayload,
  decodeResponsePayload,
  type DropReason,
  encodeInitiationHeader,
  encodeInitiationPayload,
  encodeResponseHeader,
  encodeResponsePayload,
  INITIATION,
  type InitiationHeader,
  parseCookieReplyIndex,
  parseInitiationHeader,
  parseResponseHeader,
} from "./wire.ts";

/** Outcome of a handshake step: a value, or why the datagram is dropped (and left unanswered). */
export type HandshakeResult<T> = { ok: true; value: T } | { ok: false; reason: DropReason };

/** A completed handshake, from either side's point of view. */
export interface EstablishedHandshake {
  /** Our index: peers put it in packets they send us. */
  localIndex: number;
  /** The peer's index: we put it in packets we send. */
  remoteIndex: number;
  /** Fresh session keys (the session wipes them once keyed). */
  keys: SessionKeys;
}

/** A client's view of a completed handshake. */
export interface ClientHandshake extends EstablishedHandshake {
  /** What the server assigned. */
  params: AssignedParams;
}

/** A random session index (the caller checks it against indices in use). */
export function randomIndex(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** Timestamps for initiations: microseconds since the epoch, strictly increasing in this process. */
export class InitiationClock {
  private last = 0;
  /** Next timestamp; `nowMs` is wall-clock milliseconds. */
  next(nowMs: number = Date.now()): number {
    const t = Math.max(Math.floor(nowMs * 1000), this.last + 1);
    this.last = t;
    return t;
  }
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function x25519Pair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]) as Promise<CryptoKeyPair>;
}

async function rawPublic(pair: CryptoKeyPair): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
}

/** X25519 shared secret, or null when the peer's point yields all zeros (low-order point) or is invalid. */
async function x25519(priv: CryptoKey, peerPublic: Uint8Array): Promise<Uint8Array | null> {
  try {
    const pub = await crypto.subtle.importKey("raw", peerPublic.slice(), { name: "X25519" }, false, []);
    const s = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pub }, priv, 256));
    return s.some((b) => b !== 0) ? s : null;
  } catch {
    return null;
  }
}

async function seal(key: CryptoKey, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce.slice(), additionalData: aad.slice(), tagLength: 128 },
      key,
      pt.slice(),
    ),
  );
}

async function open(
  key: CryptoKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce.slice(), additionalData: aad.slice(), tagLength: 128 },
        key,
        ct.slice(),
      ),
    );
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- initiator

/** What a client asks for in an initiation. */
export interface InitiationOptions {
  /** Our session index for the new session. */
  senderIndex: number;
  /** Overlay address to request, or null to let the server pick. */
  requestedAddress: string | null;
  /** From `InitiationClock.next()`; it also picks the key id's period. */
  timestamp: number;
  /** A cookie the server sent less than COOKIE_MAX_AGE_MS ago, for MAC2; null for none. */
  cookie?: SipKey | null;
}

/** An initiation sent and awaiting its response; holds the ephemeral private key. */
export class PendingInitiation {
  /** @param message the datagram to send (115 bytes) */
  constructor(
    readonly message: Uint8Array,
    readonly senderIndex: number,
    readonly timestamp: number,
    private readonly key: HandshakeKey,
    private readonly ephemeral: CryptoKey,
    private readonly messageHash: Uint8Array,
  ) {}

  /**
   * Takes the cookie from a cookie reply to this initiation and puts its MAC2 into `message`, to be sent
   * again. Returns the cookie (for later initiations), or why the reply is refused.
   */
  consumeCookieReply(datagram: Uint8Array): HandshakeResult<SipKey> {
    const index = parseCookieReplyIndex(datagram);
    if (typeof index === "string") return { ok: false, reason: index };
    if (index !== this.senderIndex) return { ok: false, reason: "unknown-index" };
    const cookie = openCookieReply(this.key, datagram, this.message);
    if (typeof cookie === "string") return { ok: false, reason: cookie };
    writeMac2(cookie, this.message);
    return { ok: true, value: cookie };
  }

  /**
   * Authenticates a response to this initiation and derives the session keys. Any failure gives a
   * reason and leaves this initiation usable (a forged response cannot cancel a real one).
   */
  async consumeResponse(datagram: Uint8Array): Promise<HandshakeResult<ClientHandshake>> {
    const d = datagram.slice(); // the caller's buffer may be reused while we await
    const h = parseResponseHeader(d);
    if (typeof h === "string") return { ok: false, reason: h };
    if (h.receiverIndex !== this.senderIndex) return { ok: false, reason: "unknown-index" };
    const pt = await open(this.key.aead, h.nonce, concat(h.header, this.messageHash), h.sealed);
    if (pt === null) return { ok: false, reason: "auth" };
    const params = decodeResponsePayload(pt);
    if (typeof params === "string") return { ok: false, reason: params };
    const shared = await x25519(this.ephemeral, h.ephemeral);
    if (shared === null) return { ok: false, reason: "weak-key" };
    const keys = await deriveSessionKeys(
      shared,
      this.key.secret,
      await sha256(this.message.subarray(0, INITIATION_AUTH_LENGTH), d),
    );
    shared.fill(0);
    return { ok: true, value: { localIndex: this.senderIndex, remoteIndex: h.senderIndex, keys, params } };
  }
}

/** Builds an initiation under `key`; send `message` and keep the result for the response. */
export async function createInitiation(
  key: HandshakeKey,
  opts: InitiationOptions,
): Promise<PendingInitiation> {
  const payload = encodeInitiationPayload({
    timestamp: opts.timestamp,
    requestedAddress: opts.requestedAddress,
  });
  const pair = await x25519Pair();
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const keyId = new Uint8Array(8);
  writeWireKeyId(key, keyIdPeriod(opts.timestamp / 1000), keyId, 0);
  const header = encodeInitiationHeader(opts.senderIndex, keyId, await rawPublic(pair), nonce);
  const message = concat(header, await seal(key.aead, nonce, header, payload), new Uint8Array(16));
  writeMac1(key, message);
  writeMac2(opts.cookie ?? null, message);
  return new PendingInitiation(
    message,
    opts.senderIndex,
    opts.timestamp,
    key,
    pair.privateKey,
    await sha256(message.subarray(0, INITIATION_AUTH_LENGTH)),
  );
}

// ---------------------------------------------------------------- responder

/** An authenticated, non-replayed initiation, ready to be answered. */
export interface OpenedInitiation {
  /** The key it was sealed under (identifies the peer in pinned mode). */
  key: HandshakeKey;
  /** The client's index. */
  senderIndex: number;
  /** The client's timestamp (µs since the epoch). */
  timestamp: number;
  /** What the client asked for, or null. */
  requestedAddress: string | null;
  /** A private copy of the initiation's authenticated part (without MAC1 and MAC2). */
  message: Uint8Array;
  /** The client's ephemeral public key. */
  ephemeral: Uint8Array;
}

/** What the server answers with. */
export interface ResponseOptions {
  /** Our index for the new session. */
  senderIndex: number;
  /** What we assign. */
  params: AssignedParams;
}

/** A response to send and the session it establishes. */
export interface ServerHandshake extends EstablishedHandshake {
  /** The datagram to send (97 bytes). */
  message: Uint8Array;
}

/** Tuning of the responder's replay protection (tests shrink it). */
export interface ResponderOptions {
  /** How far from our clock a timestamp may be, either way (ms). */
  freshnessMs?: number;
  /** Accepted initiations remembered per key. */
  maxRecentPerKey?: number;
  /** Accepted initiations per key: rate a second and burst. */
  keyRate?: number;
  keyBurst?: number;
}

/** What the responder remembers of one key. */
interface KeyState {
  /** Accepted initiations still inside the window: first 48 bits of the tag -> timestamp (µs). */
  readonly recent: Map<number, number>;
  readonly bucket: TokenBucket;
  insertsSincePrune: number;
}

/** 48 bits of an AEAD tag as a number (tags are unforgeable, so chosen collisions are impossible). */
function tagValue(d: Uint8Array): number {
  const o = INITIATION.mac1 - 16;
  return ((d[o] << 16 | d[o + 1] << 8 | d[o + 2]) >>> 0) * 0x1000000 +
    (d[o + 3] << 16 | d[o + 4] << 8 | d[o + 5]);
}

/** The server side of the handshake; holds the key id table and the replay state of every key. */
export class Responder {
  readonly #table = new KeyIdTable();
  readonly #state = new Map<bigint, KeyState>();
  readonly #freshnessUs: number;
  readonly #maxRecent: number;
  readonly #keyRate: number;
  readonly #keyBurst: number;
  #highestNowUs = 0;

  constructor(opts: ResponderOptions = {}) {
    this.#freshnessUs = (opts.freshnessMs ?? INITIATION_FRESHNESS_MS) * 1000;
    this.#maxRecent = opts.maxRecentPerKey ?? RECENT_INITIATIONS_PER_KEY;
    this.#keyRate = opts.keyRate ?? KEY_INITIATIONS_PER_SECOND;
    this.#keyBurst = opts.keyBurst ?? KEY_INITIATION_BURST;
  }

  /** Installs the configured keys (at start and on reload); the state of keys no longer listed is dropped. */
  setKeys(keys: readonly HandshakeKey[], nowMs: number = Date.now()): void {
    this.#table.setKeys(keys, nowMs);
    const ids = new Set(keys.map((k) => k.keyIdValue));
    for (const id of this.#state.keys()) if (!ids.has(id)) this.#state.delete(id);
  }

  /**
   * The synchronous checks, cheapest first: length, type, version, key id, MAC1, replay of an accepted
   * initiation. Gives the key the initiation claims, or why it is dropped. Allocates nothing.
   */
  checkInitiation(d: Uint8Array, nowMs: number = Date.now()): HandshakeKey | DropReason {
    const c = checkInitiation(d);
    if (c !== "ok") return c;
    const key = this.#table.lookup(d, INITIATION.keyId, nowMs);
    if (key === undefined) return "unknown-key";
    if (!mac1Valid(key, d)) return "auth";
    if (this.#state.get(key.keyIdValue)?.recent.has(tagValue(d))) return "replay";
    return key;
  }

  /**
   * Checks an initiation (all of `checkInitiation`, unless the caller ran it and passes its key as
   * `checked`, then the tag) and applies the replay rule. Copies the datagram before its first await.
   */
  async openInitiation(
    datagram: Uint8Array,
    nowMs: number = Date.now(),
    checked?: HandshakeKey,
  ): Promise<HandshakeResult<OpenedInitiation>> {
    const key = checked ?? this.checkInitiation(datagram, nowMs);
    if (typeof key === "string") return { ok: false, reason: key };
    // Work on a private copy: the caller's receive buffer may be reused while we await.
    const full = datagram.slice(0, INITIATION_LENGTH);
    const d = full.subarray(0, INITIATION_AUTH_LENGTH);
    const h = parseInitiationHeader(full) as InitiationHeader;
    const pt = await open(key.aead, h.nonce, h.aad, h.sealed);
    if (pt === null) return { ok: false, reason: "auth" };
    const payload = decodeInitiationPayload(pt);
    if (typeof payload === "string") return { ok: false, reason: payload };
    // Everything below runs without an await, so two copies of one initiation cannot both pass.
    const verdict = this.#admit(key, payload.timestamp, d, nowMs);
    if (verdict !== null) return { ok: false, reason: verdict };
    return {
      ok: true,
      value: {
        key,
        senderIndex: h.senderIndex,
        timestamp: payload.timestamp,
        requestedAddress: payload.requestedAddress,
        message: d,
        ephemeral: h.ephemeral.slice(),
      },
    };
  }

  #admit(key: HandshakeKey, ts: number, d: Uint8Array, nowMs: number): DropReason | null {
    // A monotone "now": a clock stepping back must not revive pruned initiations.
    const now = (this.#highestNowUs = Math.max(this.#highestNowUs, Math.floor(nowMs * 1000)));
    if (ts > now + this.#freshnessUs) return "future";
    if (ts < now - this.#freshnessUs) return "stale";
    let st = this.#state.get(key.keyIdValue);
    if (st === undefined) {
      st = {
        recent: new Map(),
        bucket: new TokenBucket(this.#keyRate, this.#keyBurst),
        insertsSincePrune: 0,
      };
      this.#state.set(key.keyIdValue, st);
    }
    const tag = tagValue(d);
    if (st.recent.has(tag)) return "replay";
    if (!st.bucket.take(now / 1000)) return "busy";
    if (st.recent.size >= this.#maxRecent || ++st.insertsSincePrune >= 1024) {
      st.insertsSincePrune = 0;
      for (const [id, t] of st.recent) if (t < now - this.#freshnessUs) st.recent.delete(id);
    }
    if (st.recent.size >= this.#maxRecent) return "busy";
    st.recent.set(tag, ts);
    return null;
  }

  /** Answers an opened initiation: new ephemeral, sealed parameters, session keys. */
  async respond(init: OpenedInitiation, opts: ResponseOptions): Promise<HandshakeResult<ServerHandshake>> {
    const payload = encodeResponsePayload(opts.params);
    const pair = await x25519Pair();
    const shared = await x25519(pair.privateKey, init.ephemeral);
    if (shared === null) return { ok: false, reason: "weak-key" };
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const header = encodeResponseHeader(opts.senderIndex, init.senderIndex, await rawPublic(pair), nonce);
    const aad = concat(header, await sha256(init.message));
    const message = concat(header, await seal(init.key.aead, nonce, aad, payload));
    const keys = await deriveSessionKeys(shared, init.key.secret, await sha256(init.message, message));
    shared.fill(0);
    return {
      ok: true,
      value: { message, localIndex: opts.senderIndex, remoteIndex: init.senderIndex, keys },
    };
  }
}
