/**
 * Byte layouts of protocol `vpn/1` and total parsers for them. Every parser accepts any byte string and
 * returns either the fields or a `DropReason`; none throws and none reads past the given length.
 *
 * Initiation (115 bytes): type | version | sender index (4) | key id (8) | ephemeral X25519 (32) | nonce (12)
 *   | sealed { timestamp µs (8) | family 0/4/6 (1) | address (16, zero padded) } | tag (16) | MAC1 (8) | MAC2 (8).
 *   AAD = bytes [0, 58). MAC1 = SipHash(key's MAC1 key, [0, 99)); MAC2 = SipHash(cookie, [0, 107)) or zeros.
 * Response (97 bytes): type | version | sender index (4) | receiver index (4) | ephemeral (32) | nonce (12)
 *   | sealed { flags (1) | IPv4 (4) | prefix (1) | IPv6 (16) | prefix (1) | MTU (2) | keepalive s (2) } | tag (16).
 *   AAD = bytes [0, 54) || SHA-256(initiation).
 * Cookie reply (38 bytes): type | version | receiver index (4) | nonce (8) | sealed cookie (16) | tag (8).
 *   Cookie = SipHash(secret A, source) || SipHash(secret B, source), source = 16-byte address || port;
 *   sealed = cookie XOR SipHash(key's seal key, nonce || 0) || SipHash(.., nonce || 1);
 *   tag = SipHash(key's tag key, bytes [0, 30) || the initiation's MAC1).
 * Data: type | receiver index (4) | counter (8) | ciphertext | tag (16). AAD = bytes [0, 13). All integers big-endian.
 */
import {
  CONFIG_MAX_ENTRIES,
  CONFIG_MAX_LENGTH,
  COOKIE_LENGTH,
  COOKIE_NONCE_LENGTH,
  COOKIE_REPLY_LENGTH,
  CTRL_CONFIG,
  DATA_HEADER_LENGTH,
  DATA_OVERHEAD,
  INDEX_LENGTH,
  INITIATION_AUTH_LENGTH,
  INITIATION_HEADER_LENGTH,
  INITIATION_LENGTH,
  INITIATION_PAYLOAD_LENGTH,
  KEY_ID_LENGTH,
  MAC_LENGTH,
  MAX_DATAGRAM_LENGTH,
  MIN_MTU,
  MIN_MTU_IPV6,
  MSG_COOKIE_REPLY,
  MSG_DATA,
  MSG_INITIATION,
  MSG_RESPONSE,
  NONCE_LENGTH,
  PROTOCOL_VERSION,
  PUBLIC_KEY_LENGTH,
  RESPONSE_HEADER_LENGTH,
  RESPONSE_LENGTH,
  RESPONSE_PAYLOAD_LENGTH,
} from "./constants.ts";
import { formatIp, parseIp } from "../net/ip_address.ts";
import { isDomainName } from "../net/domain_name.ts";
import { readU16, readU32, writeU32 } from "../net/bytes.ts";

/** Why a datagram was dropped. Closed set; `vpn status` counts drops by it. */
export type DropReason =
  | "short" // shorter than its message type needs
  | "long" // longer than its message type allows
  | "type" // unknown message type
  | "version" // unsupported protocol version
  | "unknown-key" // initiation for a key id the server does not have
  | "unknown-index" // response / data for an index that has no session
  | "auth" // tag check failed
  | "replay" // counter or initiation seen before
  | "stale" // initiation timestamp older than the freshness window
  | "future" // initiation timestamp further ahead of our clock than the freshness window
  | "payload" // authenticated but malformed contents
  | "expired" // session too old
  | "limit" // counter at or beyond the session's limit
  | "busy" // refused under load or over a rate limit (per source, per key), or answered with a cookie
  | "weak-key"; // X25519 produced an all-zero secret

/** Offsets inside an initiation. */
export const INITIATION = {
  type: 0,
  version: 1,
  senderIndex: 2,
  keyId: 6,
  ephemeral: 6 + KEY_ID_LENGTH,
  nonce: 6 + KEY_ID_LENGTH + PUBLIC_KEY_LENGTH,
  sealed: INITIATION_HEADER_LENGTH,
  mac1: INITIATION_AUTH_LENGTH,
  mac2: INITIATION_AUTH_LENGTH + MAC_LENGTH,
} as const;

/** Offsets inside a cookie reply. */
export const COOKIE_REPLY = {
  type: 0,
  version: 1,
  receiverIndex: 2,
  nonce: 2 + INDEX_LENGTH,
  sealed: 2 + INDEX_LENGTH + COOKIE_NONCE_LENGTH,
  tag: 2 + INDEX_LENGTH + COOKIE_NONCE_LENGTH + COOKIE_LENGTH,
} as const;

/** Offsets inside a response. */
export const RESPONSE = {
  type: 0,
  version: 1,
  senderIndex: 2,
  receiverIndex: 6,
  ephemeral: 10,
  nonce: 10 + PUBLIC_KEY_LENGTH,
  sealed: RESPONSE_HEADER_LENGTH,
} as const;

/** Offsets inside a data packet header. */
export const DATA = { type: 0, receiverIndex: 1, counter: 5, body: DATA_HEADER_LENGTH } as const;

// Big-endian u32 helpers, re-exported for the protocol modules that read and write headers.
export { readU32, writeU32 };

/** Big-endian u64 at `off` as a number; -1 when it exceeds 2^53 - 1 (no valid counter or timestamp is that big). */
export function readU64(b: Uint8Array, off: number): number {
  const hi = readU32(b, off);
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + readU32(b, off + 4);
}

/** Writes a safe non-negative integer big-endian as u64 at `off`. */
export function writeU64(b: Uint8Array, off: number, v: number): void {
  writeU32(b, off, Math.floor(v / 0x100000000));
  writeU32(b, off + 4, v >>> 0);
}

/**
 * Message type of a datagram of `len` bytes in `buf`, or why it is not one. Checks only what is
 * cheap: the type byte and the length the type requires (data: at least header + tag).
 */
export function classify(buf: Uint8Array, len: number): number | DropReason {
  if (len < 1 || len > buf.length) return "short";
  if (len > MAX_DATAGRAM_LENGTH) return "long";
  const t = buf[0];
  if (t === MSG_DATA) return len < DATA_OVERHEAD ? "short" : MSG_DATA;
  if (t === MSG_INITIATION) return len < INITIATION_LENGTH ? "short" : len > INITIATION_LENGTH ? "long" : t;
  if (t === MSG_RESPONSE) return len < RESPONSE_LENGTH ? "short" : len > RESPONSE_LENGTH ? "long" : t;
  if (t === MSG_COOKIE_REPLY) {
    return len < COOKIE_REPLY_LENGTH ? "short" : len > COOKIE_REPLY_LENGTH ? "long" : t;
  }
  return "type";
}

/** Writes a data header (type, receiver index, counter) at the start of `buf`. */
export function writeDataHeader(buf: Uint8Array, receiverIndex: number, counter: number): void {
  buf[0] = MSG_DATA;
  writeU32(buf, DATA.receiverIndex, receiverIndex);
  writeU64(buf, DATA.counter, counter);
}

/** Receiver index of a data packet (caller checked `classify`). */
export function readReceiverIndex(buf: Uint8Array): number {
  return readU32(buf, DATA.receiverIndex);
}

/** Counter of a data packet (caller checked `classify`); -1 if above 2^53 - 1. */
export function readCounter(buf: Uint8Array): number {
  return readU64(buf, DATA.counter);
}

// ---------------------------------------------------------------- initiation

/** Cleartext fields of an initiation; the views alias the datagram. */
export interface InitiationHeader {
  senderIndex: number;
  /** Key id as a number for Map lookups. */
  keyId: bigint;
  ephemeral: Uint8Array;
  nonce: Uint8Array;
  /** Bytes [0, 58): the AAD. */
  aad: Uint8Array;
  /** Ciphertext + tag. */
  sealed: Uint8Array;
}

/** Length, type and version of an initiation in `d`, without building anything: "ok" or why not. */
export function checkInitiation(d: Uint8Array): "ok" | DropReason {
  const c = classify(d, d.length);
  if (typeof c !== "number") return c;
  if (c !== MSG_INITIATION) return "type";
  return d[INITIATION.version] === PROTOCOL_VERSION ? "ok" : "version";
}

/** Reads an 8-byte key id as an unsigned bigint (Map key). */
export function keyIdValue(b: Uint8Array, off = 0): bigint {
  return (BigInt(readU32(b, off)) << 32n) | BigInt(readU32(b, off + 4));
}

/** Parses the cleartext part of an initiation; checks length, type and version only. */
export function parseInitiationHeader(d: Uint8Array): InitiationHeader | DropReason {
  const c = checkInitiation(d);
  if (c !== "ok") return c;
  return {
    senderIndex: readU32(d, INITIATION.senderIndex),
    keyId: keyIdValue(d, INITIATION.keyId),
    ephemeral: d.subarray(INITIATION.ephemeral, INITIATION.ephemeral + PUBLIC_KEY_LENGTH),
    nonce: d.subarray(INITIATION.nonce, INITIATION.nonce + NONCE_LENGTH),
    aad: d.subarray(0, INITIATION.sealed),
    sealed: d.subarray(INITIATION.sealed, INITIATION.mac1),
  };
}

/** Builds an initiation's cleartext header (first 58 bytes). */
export function encodeInitiationHeader(
  senderIndex: number,
  keyId: Uint8Array,
  ephemeral: Uint8Array,
  nonce: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(INITIATION_HEADER_LENGTH);
  h[INITIATION.type] = MSG_INITIATION;
  h[INITIATION.version] = PROTOCOL_VERSION;
  writeU32(h, INITIATION.senderIndex, senderIndex);
  h.set(keyId, INITIATION.keyId);
  h.set(ephemeral, INITIATION.ephemeral);
  h.set(nonce, INITIATION.nonce);
  return h;
}

/** Decrypted contents of an initiation. */
export interface InitiationPayload {
  /** Microseconds since the Unix epoch, strictly increasing per client. */
  timestamp: number;
  /** Requested overlay address as text, or null to let the server choose. */
  requestedAddress: string | null;
}

/** Encodes the sealed part of an initiation; throws RangeError on a bad address or timestamp. */
export function encodeInitiationPayload(p: InitiationPayload): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(p.timestamp) || p.timestamp < 0) {
    throw new RangeError(`bad timestamp ${p.timestamp}`);
  }
  const out = new Uint8Array(INITIATION_PAYLOAD_LENGTH);
  writeU64(out, 0, p.timestamp);
  if (p.requestedAddress !== null) {
    const a = parseIp(p.requestedAddress);
    if (a === null) throw new RangeError(`not an IP address: ${p.requestedAddress}`);
    out[8] = a.length === 4 ? 4 : 6;
    out.set(a, 9);
  }
  return out;
}

/** Decodes the sealed part of an initiation; rejects non-canonical encodings. */
export function decodeInitiationPayload(b: Uint8Array): InitiationPayload | DropReason {
  if (b.length !== INITIATION_PAYLOAD_LENGTH) return "payload";
  const timestamp = readU64(b, 0);
  if (timestamp < 0) return "payload";
  const fam = b[8], width = fam === 4 ? 4 : fam === 6 ? 16 : 0;
  if (fam !== 0 && width === 0) return "payload";
  for (let i = 9 + width; i < 25; i++) if (b[i] !== 0) return "payload";
  return { timestamp, requestedAddress: width === 0 ? null : formatIp(b.slice(9, 9 + width)) };
}

// ---------------------------------------------------------------- cookie reply

/** Checks a cookie reply's length, type and version; gives its receiver index or why not. */
export function parseCookieReplyIndex(d: Uint8Array): number | DropReason {
  const c = classify(d, d.length);
  if (typeof c !== "number") return c;
  if (c !== MSG_COOKIE_REPLY) return "type";
  if (d[COOKIE_REPLY.version] !== PROTOCOL_VERSION) return "version";
  return readU32(d, COOKIE_REPLY.receiverIndex);
}

/** Writes a cookie reply's cleartext header (type, version, receiver index) at the start of `out`. */
export function writeCookieReplyHeader(out: Uint8Array, receiverIndex: number): void {
  out[COOKIE_REPLY.type] = MSG_COOKIE_REPLY;
  out[COOKIE_REPLY.version] = PROTOCOL_VERSION;
  writeU32(out, COOKIE_REPLY.receiverIndex, receiverIndex);
}

// ---------------------------------------------------------------- response

/** Cleartext fields of a response; the views alias the datagram. */
export interface ResponseHeader {
  senderIndex: number;
  receiverIndex: number;
  ephemeral: Uint8Array;
  nonce: Uint8Array;
  /** Bytes [0, 54) (the AAD continues with the initiation hash). */
  header: Uint8Array;
  sealed: Uint8Array;
}

/** Parses the cleartext part of a response; checks length, type and version only. */
export function parseResponseHeader(d: Uint8Array): ResponseHeader | DropReason {
  const c = classify(d, d.length);
  if (typeof c !== "number") return c;
  if (c !== MSG_RESPONSE) return "type";
  if (d[RESPONSE.version] !== PROTOCOL_VERSION) return "version";
  return {
    senderIndex: readU32(d, RESPONSE.senderIndex),
    receiverIndex: readU32(d, RESPONSE.receiverIndex),
    ephemeral: d.subarray(RESPONSE.ephemeral, RESPONSE.ephemeral + PUBLIC_KEY_LENGTH),
    nonce: d.subarray(RESPONSE.nonce, RESPONSE.nonce + NONCE_LENGTH),
    header: d.subarray(0, RESPONSE.sealed),
    sealed: d.subarray(RESPONSE.sealed, RESPONSE_LENGTH),
  };
}

/** Builds a response's cleartext header (first 54 bytes). */
export function encodeResponseHeader(
  senderIndex: number,
  receiverIndex: number,
  ephemeral: Uint8Array,
  nonce: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(RESPONSE_HEADER_LENGTH);
  h[RESPONSE.type] = MSG_RESPONSE;
  h[RESPONSE.version] = PROTOCOL_VERSION;
  writeU32(h, RESPONSE.senderIndex, senderIndex);
  writeU32(h, RESPONSE.receiverIndex, receiverIndex);
  h.set(ephemeral, RESPONSE.ephemeral);
  h.set(nonce, RESPONSE.nonce);
  return h;
}

/** An overlay address with its prefix length, as text ("10.0.0.2", 24). */
export interface PrefixedAddress {
  address: string;
  prefix: number;
}

/** What the server assigns a client in its response. */
export interface AssignedParams {
  ipv4: PrefixedAddress | null;
  ipv6: PrefixedAddress | null;
  /** Tunnel MTU (inner packet size), MIN_MTU..65478; >= MIN_MTU_IPV6 when IPv6 is assigned. */
  mtu: number;
  /** Keepalive interval in seconds; 0 = none. */
  keepaliveSeconds: number;
}

function validParams(p: AssignedParams): boolean {
  return (p.ipv4 !== null || p.ipv6 !== null) &&
    Number.isInteger(p.mtu) && p.mtu >= (p.ipv6 ? MIN_MTU_IPV6 : MIN_MTU) &&
    p.mtu <= MAX_DATAGRAM_LENGTH - DATA_OVERHEAD &&
    Number.isInteger(p.keepaliveSeconds) && p.keepaliveSeconds >= 0 && p.keepaliveSeconds <= 0xffff &&
    (p.ipv4 === null || (Number.isInteger(p.ipv4.prefix) && p.ipv4.prefix >= 0 && p.ipv4.prefix <= 32)) &&
    (p.ipv6 === null || (Number.isInteger(p.ipv6.prefix) && p.ipv6.prefix >= 0 && p.ipv6.prefix <= 128));
}

/** Encodes the sealed part of a response; throws RangeError on invalid parameters. */
export function encodeResponsePayload(p: AssignedParams): Uint8Array<ArrayBuffer> {
  const v4 = p.ipv4 ? parseIp(p.ipv4.address) : null;
  const v6 = p.ipv6 ? parseIp(p.ipv6.address) : null;
  if (!validParams(p) || (p.ipv4 && v4?.length !== 4) || (p.ipv6 && v6?.length !== 16)) {
    throw new RangeError(`invalid assigned parameters: ${JSON.stringify(p)}`);
  }
  const out = new Uint8Array(RESPONSE_PAYLOAD_LENGTH);
  out[0] = (v4 ? 1 : 0) | (v6 ? 2 : 0);
  if (v4 && p.ipv4) {
    out.set(v4, 1);
    out[5] = p.ipv4.prefix;
  }
  if (v6 && p.ipv6) {
    out.set(v6, 6);
    out[22] = p.ipv6.prefix;
  }
  out[23] = p.mtu >> 8;
  out[24] = p.mtu & 0xff;
  out[25] = p.keepaliveSeconds >> 8;
  out[26] = p.keepaliveSeconds & 0xff;
  return out;
}

/** Decodes the sealed part of a response; rejects non-canonical or out-of-range contents. */
export function decodeResponsePayload(b: Uint8Array): AssignedParams | DropReason {
  if (b.length !== RESPONSE_PAYLOAD_LENGTH) return "payload";
  const flags = b[0];
  if (flags & ~3) return "payload";
  const zero = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (!(flags & 1) && !zero(1, 6)) return "payload";
  if (!(flags & 2) && !zero(6, 23)) return "payload";
  const p: AssignedParams = {
    ipv4: flags & 1 ? { address: formatIp(b.slice(1, 5)), prefix: b[5] } : null,
    ipv6: flags & 2 ? { address: formatIp(b.slice(6, 22)), prefix: b[22] } : null,
    mtu: readU16(b, 23),
    keepaliveSeconds: readU16(b, 25),
  };
  return validParams(p) ? p : "payload";
}

/** Settings the server pushes to a client over the session (the CTRL_CONFIG control message). */
export interface PushedConfig {
  /** Resolver addresses, as text. */
  dns: string[];
  /** DNS search domains. */
  search: string[];
}

/**
 * CTRL_CONFIG layout: type (1), resolver count (1), per resolver family 4|6 (1) + address (4|16),
 * domain count (1), per domain length 1..253 (1) + ASCII name. At most CONFIG_MAX_LENGTH bytes.
 * Throws RangeError when the config does not fit (config loading checks this first).
 */
export function encodeConfigMessage(c: PushedConfig): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(CONFIG_MAX_LENGTH);
  if (c.dns.length > CONFIG_MAX_ENTRIES || c.search.length > CONFIG_MAX_ENTRIES) {
    throw new RangeError(`at most ${CONFIG_MAX_ENTRIES} resolvers and ${CONFIG_MAX_ENTRIES} search domains`);
  }
  let o = 0;
  out[o++] = CTRL_CONFIG;
  out[o++] = c.dns.length;
  for (const text of c.dns) {
    const ip = parseIp(text);
    if (!ip) throw new RangeError(`not an IP address: ${text}`);
    out[o++] = ip.length === 4 ? 4 : 6;
    out.set(ip, o);
    o += ip.length;
  }
  out[o++] = c.search.length;
  for (const name of c.search) {
    const bytes = new TextEncoder().encode(name);
    if (!validDomain(bytes) || o + 1 + bytes.length > CONFIG_MAX_LENGTH) {
      throw new RangeError(`search domain does not fit or is not a domain name: ${name}`);
    }
    out[o++] = bytes.length;
    out.set(bytes, o);
    o += bytes.length;
  }
  return out.slice(0, o);
}

function validDomain(b: Uint8Array): boolean {
  for (const x of b) if (x < 0x21 || x > 0x7e) return false; // ASCII only: one byte per character
  return isDomainName(String.fromCharCode(...b));
}

/** Total parser of a CTRL_CONFIG message (`b[0..len)`): the config, or "payload" for anything malformed. */
export function decodeConfigMessage(b: Uint8Array, len: number): PushedConfig | DropReason {
  if (len < 3 || len > CONFIG_MAX_LENGTH || len > b.length || b[0] !== CTRL_CONFIG) return "payload";
  let o = 1;
  const nDns = b[o++];
  if (nDns > CONFIG_MAX_ENTRIES) return "payload";
  const dns: string[] = [];
  for (let i = 0; i < nDns; i++) {
    const size = b[o] === 4 ? 4 : b[o] === 6 ? 16 : 0;
    if (size === 0 || o + 1 + size > len) return "payload";
    dns.push(formatIp(b.slice(o + 1, o + 1 + size)));
    o += 1 + size;
  }
  if (o >= len) return "payload";
  const nSearch = b[o++];
  if (nSearch > CONFIG_MAX_ENTRIES) return "payload";
  const search: string[] = [];
  for (let i = 0; i < nSearch; i++) {
    if (o >= len) return "payload";
    const n = b[o];
    if (o + 1 + n > len) return "payload";
    const name = b.subarray(o + 1, o + 1 + n);
    if (!validDomain(name)) return "payload";
    search.push(String.fromCharCode(...name));
    o += 1 + n;
  }
  return o === len ? { dns, search } : "payload";
}
