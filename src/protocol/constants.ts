/**
 * Every constant of protocol `vpn/1` in one place: message types, wire sizes, timers and limits.
 * Byte offsets of each message are in `wire.ts`; this file holds the numbers other modules agree on.
 */

/** Protocol version carried in handshake messages. */
export const PROTOCOL_VERSION = 1;

/** Byte 0 of an initiation (client -> server). */
export const MSG_INITIATION = 1;
/** Byte 0 of a response (server -> client). */
export const MSG_RESPONSE = 2;
/** Byte 0 of a data (transport) packet. */
export const MSG_DATA = 3;
/** Byte 0 of a cookie reply (server -> client, instead of a response while the server is under load). */
export const MSG_COOKIE_REPLY = 4;

/** A configured key: 32 random bytes (44 base64 characters in files). */
export const KEY_LENGTH = 32;
/** Key id sent in cleartext so the server finds the key in O(1); it changes every `KEY_ID_PERIOD_MS`. */
export const KEY_ID_LENGTH = 8;
/** The key id of an initiation is SipHash(key's id key, period number); a new period every 120 s. */
export const KEY_ID_PERIOD_MS = 120_000;
/** X25519 public key. */
export const PUBLIC_KEY_LENGTH = 32;
/** AES-GCM nonce. */
export const NONCE_LENGTH = 12;
/** AES-GCM tag. */
export const TAG_LENGTH = 16;
/** Session index (sender / receiver index). */
export const INDEX_LENGTH = 4;
/** Data header: type (1) + receiver index (4) + counter (8); it is the AAD of the packet. */
export const DATA_HEADER_LENGTH = 13;
/** Bytes a data packet adds to the inner packet: header + tag. */
export const DATA_OVERHEAD = DATA_HEADER_LENGTH + TAG_LENGTH;
/** Largest UDP payload accepted or produced (IPv4 limit). */
export const MAX_DATAGRAM_LENGTH = 65507;

/** Sealed part of an initiation: timestamp (8) + address family (1) + address (16). */
export const INITIATION_PAYLOAD_LENGTH = 25;
/** Cleartext header of an initiation: type, version, sender index, key id, ephemeral, nonce. */
export const INITIATION_HEADER_LENGTH = 2 + INDEX_LENGTH + KEY_ID_LENGTH + PUBLIC_KEY_LENGTH + NONCE_LENGTH;
/** Bytes of an initiation the AEAD covers and the transcript hashes (header, sealed payload, tag). */
export const INITIATION_AUTH_LENGTH = INITIATION_HEADER_LENGTH + INITIATION_PAYLOAD_LENGTH + TAG_LENGTH;
/** MAC1 / MAC2 of an initiation: SipHash-2-4 outputs. */
export const MAC_LENGTH = 8;
/** Total initiation size (fixed): authenticated part, MAC1 (key holder), MAC2 (cookie holder or zeros). */
export const INITIATION_LENGTH = INITIATION_AUTH_LENGTH + 2 * MAC_LENGTH;
/** Sealed part of a response: flags, IPv4 + prefix, IPv6 + prefix, MTU (u16), keepalive (u16). */
export const RESPONSE_PAYLOAD_LENGTH = 1 + 4 + 1 + 16 + 1 + 2 + 2;
/** Cleartext header of a response: type, version, sender index, receiver index, ephemeral, nonce. */
export const RESPONSE_HEADER_LENGTH = 2 + 2 * INDEX_LENGTH + PUBLIC_KEY_LENGTH + NONCE_LENGTH;
/** Total response size (fixed; smaller than an initiation so the server never amplifies). */
export const RESPONSE_LENGTH = RESPONSE_HEADER_LENGTH + RESPONSE_PAYLOAD_LENGTH + TAG_LENGTH;

/** A cookie: 16 bytes, the SipHash key of an initiation's MAC2. */
export const COOKIE_LENGTH = 16;
/** Nonce of a cookie reply. */
export const COOKIE_NONCE_LENGTH = 8;
/** Cookie reply: type, version, receiver index, nonce, sealed cookie, tag (smaller than an initiation). */
export const COOKIE_REPLY_LENGTH = 2 + INDEX_LENGTH + COOKIE_NONCE_LENGTH + COOKIE_LENGTH + MAC_LENGTH;
/** The responder's cookie secret changes this often; cookies of the current and previous secret are valid. */
export const COOKIE_SECRET_ROTATION_MS = 120_000;
/** An initiator uses a cookie for this long after receiving it (less than one rotation, for latency). */
export const COOKIE_MAX_AGE_MS = COOKIE_SECRET_ROTATION_MS - 5_000;

/** Default tunnel MTU: IPv6 (40) + UDP (8) + data overhead (29) + 1420 <= 1500. */
export const DEFAULT_MTU = 1420;
/** Largest tunnel MTU configured or accepted from a server (jumbo frames); sizes the client's slots. */
export const MAX_MTU = 9000;
/** Smallest tunnel MTU: every IPv4 host must take 576-byte datagrams (RFC 791). */
export const MIN_MTU = 576;
/** Smallest tunnel MTU when the tunnel carries IPv6 (RFC 8200). */
export const MIN_MTU_IPV6 = 1280;
/** Default keepalive interval announced by the server. */
export const DEFAULT_KEEPALIVE_SECONDS = 25;

/** The initiator starts a new handshake once its session is this old. */
export const REKEY_AFTER_TIME_MS = 120_000;
/** A session this old is refused for sending and receiving. */
export const REJECT_AFTER_TIME_MS = 180_000;
/** The initiator starts a new handshake once either direction has used this many counters. */
export const REKEY_AFTER_MESSAGES = 2 ** 40;
/** Hard counter limit: no packet is sealed or accepted with a counter at or above it (fits a JS number). */
export const REJECT_AFTER_MESSAGES = 2 ** 40 + 2 ** 32;
/** After a rekey the previous session still decrypts for this long, so packets in flight are not lost. */
export const REKEY_GRACE_MS = 10_000;
/**
 * An unanswered initiation is first retried after this long (WireGuard waits 5 s). Short because under a
 * full-speed flood the kernel may drop a real initiation with the junk: one lost datagram should cost about a
 * second, not five. The clients' one-second tick makes the first retry 0.5-1.5 s after sending.
 */
export const REKEY_TIMEOUT_MS = 500;
/** Longest wait between handshake attempts while the peer does not answer (the wait doubles up to it). */
export const REKEY_RETRY_MAX_MS = 30_000;

/** Replay window ring: 128 blocks of 32 bits (RFC 6479); one block is the slack for the moving edge. */
export const REPLAY_WINDOW_BLOCKS = 128;
/** Counters up to this far below the highest accepted one are still accepted once. */
export const REPLAY_WINDOW_SIZE = (REPLAY_WINDOW_BLOCKS - 1) * 32;

/** An initiation's timestamp must be within this of the responder's clock, either way. */
export const INITIATION_FRESHNESS_MS = 120_000;
/** Accepted initiations per key id: a token bucket of this rate (WireGuard: one per 20 ms per peer)... */
export const KEY_INITIATIONS_PER_SECOND = 50;
/** ...and this burst. */
export const KEY_INITIATION_BURST = 5;
/**
 * Bound of one key id's replay cache. An entry lives until its timestamp is older than the freshness
 * window, at most two windows after acceptance, so the key's bucket can never fill it.
 */
export const RECENT_INITIATIONS_PER_KEY = KEY_INITIATION_BURST +
  KEY_INITIATIONS_PER_SECOND * 2 * (INITIATION_FRESHNESS_MS / 1000);

/** Handshakes waiting or in progress above which the responder is under load and asks for cookies. */
export const UNDER_LOAD_HANDSHAKES = 8;
/** The responder stays under load this long after the queue last went above the threshold. */
export const UNDER_LOAD_AFTER_MS = 1_000;
/** Slots of the per-source token bucket table (fixed: memory does not grow with the number of sources). */
export const SOURCE_BUCKET_SLOTS = 4096;
/** Initiations per second one source (an IPv4 address or an IPv6 /64) may have answered under load... */
export const SOURCE_INITIATIONS_PER_SECOND = 20;
/** ...and its burst. */
export const SOURCE_INITIATION_BURST = 5;

/** HKDF salt for everything derived from a configured key. */
export const LABEL_SALT = "vpn/1";
/** HKDF info of the handshake key. */
export const LABEL_HANDSHAKE_KEY = "vpn/1 handshake key";
/** HKDF info of the stable key id (internal: never sent; names a key in the responder's tables). */
export const LABEL_KEY_ID = "vpn/1 key id";
/** HKDF info of the four SipHash keys: wire key id, MAC1, cookie sealing, cookie tag. */
export const LABEL_SIP_KEYS = "vpn/1 sip keys";
/** HKDF info prefix of the session keys (followed by the transcript hash). */
export const LABEL_SESSION_KEYS = "vpn/1 session keys";

/** A side that received data and sent nothing for this long sends a keepalive, so the other side knows it is alive. */
export const PASSIVE_KEEPALIVE_MS = 10_000;
/** The initiator handshakes again when data it sent has gone unanswered this long (the peer may have restarted). */
export const UNANSWERED_TIMEOUT_MS = 15_000;

/**
 * Control messages travel as the plaintext of a data packet; their first byte is below 0x40, which no IP
 * packet starts with (IPv4 0x4_, IPv6 0x6_), so the data path tells them apart with one comparison.
 */
export const CONTROL_MAX_TYPE = 0x3f;
/** Client -> server: "send me your settings" (1 byte); sent after a handshake until answered. */
export const CTRL_CONFIG_REQUEST = 0x01;
/** Server -> client: resolvers and search domains (layout in wire.ts); only ever an answer to a request. */
export const CTRL_CONFIG = 0x02;
/** Most resolvers / search domains one config message carries. */
export const CONFIG_MAX_ENTRIES = 8;
/** Longest config message: fits any tunnel MTU (576 and up) with room to spare. */
export const CONFIG_MAX_LENGTH = 512;
