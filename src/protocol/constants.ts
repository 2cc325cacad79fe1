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

/** A configured key: 32 random bytes (44 base64 characters in files). */
export const KEY_LENGTH = 32;
/** Public key id derived from a configured key, sent in cleartext so the server finds the key in O(1). */
export const KEY_ID_LENGTH = 8;
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
/** Total initiation size (fixed). */
export const INITIATION_LENGTH = INITIATION_HEADER_LENGTH + INITIATION_PAYLOAD_LENGTH + TAG_LENGTH;
/** Sealed part of a response: flags, IPv4 + prefix, IPv6 + prefix, MTU (u16), keepalive (u16). */
export const RESPONSE_PAYLOAD_LENGTH = 1 + 4 + 1 + 16 + 1 + 2 + 2;
/** Cleartext header of a response: type, version, sender index, receiver index, ephemeral, nonce. */
export const RESPONSE_HEADER_LENGTH = 2 + 2 * INDEX_LENGTH + PUBLIC_KEY_LENGTH + NONCE_LENGTH;
/** Total response size (fixed; smaller than an initiation so the server never amplifies). */
export const RESPONSE_LENGTH = RESPONSE_HEADER_LENGTH + RESPONSE_PAYLOAD_LENGTH + TAG_LENGTH;

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
/** An unanswered initiation is retried after this long. */
export const REKEY_TIMEOUT_MS = 5_000;
/** Longest wait between handshake attempts while the peer does not answer (the wait doubles up to it). */
export const REKEY_RETRY_MAX_MS = 30_000;

/** Replay window ring: 128 blocks of 32 bits (RFC 6479); one block is the slack for the moving edge. */
export const REPLAY_WINDOW_BLOCKS = 128;
/** Counters up to this far below the highest accepted one are still accepted once. */
export const REPLAY_WINDOW_SIZE = (REPLAY_WINDOW_BLOCKS - 1) * 32;

/** An initiation whose timestamp is not newer than the last accepted one for its key id must be this fresh. */
export const INITIATION_FRESHNESS_MS = 120_000;
/** Upper bound of the recently-accepted-initiation cache the responder keeps for replay detection. */
export const RECENT_INITIATIONS_MAX = 65_536;

/** HKDF salt for everything derived from a configured key. */
export const LABEL_SALT = "vpn/1";
/** HKDF info of the handshake key. */
export const LABEL_HANDSHAKE_KEY = "vpn/1 handshake key";
/** HKDF info of the public key id. */
export const LABEL_KEY_ID = "vpn/1 key id";
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
