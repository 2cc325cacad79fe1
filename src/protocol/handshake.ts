/**
 * The `vpn/1` handshake, I/O-free: the initiator (client) builds an initiation and consumes the response;
 * the responder (server) authenticates initiations and answers them. All crypto is WebCrypto:
 * X25519 ephemerals on both sides, AES-256-GCM under the handshake key, HKDF-SHA256 for session keys.
 *
 * The responder spends on a bad datagram at most one tag check: length, type and version are checked
 * first, then the key id is looked up, then the tag; X25519 runs only for authenticated initiations.
 *
 * Replay rule for initiations (the key may be shared by many clients whose clocks interleave):
 * accept an authenticated initiation iff its tag was not accepted before (recent cache) AND
 * (its timestamp is newer than the last accepted for its key id OR it is within ±freshness of the
 * responder's clock). A cache entry is kept until its timestamp falls below now - freshness, after
 * which a replay fails both branches. With a per-peer key this is WireGuard's monotonic rule plus
 * tolerance of a client whose clock went back; with a shared key it stays sound without per-client state.
 */
import { INITIATION_FRESHNESS_MS, INITIATION_LENGTH, RECENT_INITIATIONS_MAX } from "./constants.ts";
import { deriveSessionKeys, type HandshakeKey, type SessionKeys } from "./keys.ts";
import {
  type AssignedParams,
  decodeInitiationPayload,
  decodeResponsePayload,
  type DropReason,
  encodeInitiationHeader,
  encodeInitiationPayload,
  encodeResponseHeader,
  encodeResponsePayload,
  type InitiationHeader,
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
  /** From `InitiationClock.next()`. */
  timestamp: number;
}

/** An initiation sent and awaiting its response; holds the ephemeral private key. */
export class PendingInitiation {
  /** @param message the datagram to send (99 bytes) */
  constructor(
    readonly message: Uint8Array,
    readonly senderIndex: number,
    readonly timestamp: number,
    private readonly key: HandshakeKey,
    private readonly ephemeral: CryptoKey,
    private readonly messageHash: Uint8Array,
  ) {}

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
    const keys = await deriveSessionKeys(shared, this.key.secret, await sha256(this.message, d));
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
  const header = encodeInitiationHeader(opts.senderIndex, key.keyId, await rawPublic(pair), nonce);
  const message = concat(header, await seal(key.aead, nonce, header, payload));
  return new PendingInitiation(
    message,
    opts.senderIndex,
    opts.timestamp,
    key,
    pair.privateKey,
    await sha256(message),
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
  /** A private copy of the initiation datagram. */
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

/** Tuning of the responder's replay protection. */
export interface ResponderOptions {
  /** How far from our clock a not-newer timestamp may be (ms). */
  freshnessMs?: number;
  /** Most recently accepted initiations remembered. */
  maxRecent?: number;
}

/** The server side of the handshake; holds the replay state of every key id. */
export class Responder {
  private readonly lastTimestamp = new Map<bigint, number>();
  private readonly recent = new Map<string, number>();
  private readonly freshnessUs: number;
  private readonly maxRecent: number;
  private highestNowUs = 0;
  private insertsSincePrune = 0;

  /** @param lookup finds the handshake key of a key id (a Map get) */
  constructor(
    private readonly lookup: (keyId: bigint) => HandshakeKey | undefined,
    opts: ResponderOptions = {},
  ) {
    this.freshnessUs = (opts.freshnessMs ?? INITIATION_FRESHNESS_MS) * 1000;
    this.maxRecent = opts.maxRecent ?? RECENT_INITIATIONS_MAX;
  }

  /** Checks an initiation cheapest-first and applies the replay rule; `nowMs` is wall-clock ms. */
  async openInitiation(
    datagram: Uint8Array,
    nowMs: number = Date.now(),
  ): Promise<HandshakeResult<OpenedInitiation>> {
    const checked = parseInitiationHeader(datagram);
    if (typeof checked === "string") return { ok: false, reason: checked };
    const key = this.lookup(checked.keyId);
    if (key === undefined) return { ok: false, reason: "unknown-key" };
    // Work on a private copy: the caller's receive buffer may be reused while we await.
    const d = datagram.slice(0, INITIATION_LENGTH);
    const h = parseInitiationHeader(d) as InitiationHeader;
    const pt = await open(key.aead, h.nonce, h.aad, h.sealed);
    if (pt === null) return { ok: false, reason: "auth" };
    const payload = decodeInitiationPayload(pt);
    if (typeof payload === "string") return { ok: false, reason: payload };
    // Everything below runs without an await, so two copies of one initiation cannot both pass.
    const verdict = this.admit(h.keyId, payload.timestamp, d.subarray(d.length - 16), nowMs);
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

  private admit(keyId: bigint, ts: number, tag: Uint8Array, nowMs: number): DropReason | null {
    // A monotone "now": a clock stepping back must not revive pruned initiations.
    const now = (this.highestNowUs = Math.max(this.highestNowUs, Math.floor(nowMs * 1000)));
    const id = Array.from(tag, (b) => b.toString(16).padStart(2, "0")).join("");
    if (this.recent.has(id)) return "replay";
    const last = this.lastTimestamp.get(keyId) ?? -1;
    if (!(ts > last || Math.abs(ts - now) <= this.freshnessUs)) return "stale";
    if (this.recent.size >= this.maxRecent || ++this.insertsSincePrune >= 1024) this.prune(now);
    if (this.recent.size >= this.maxRecent) return "busy";
    this.recent.set(id, ts);
    if (ts > last) this.lastTimestamp.set(keyId, ts);
    return null;
  }

  private prune(now: number): void {
    this.insertsSincePrune = 0;
    for (const [id, ts] of this.recent) if (ts < now - this.freshnessUs) this.recent.delete(id);
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
