/**
 * Every key derived with HKDF-SHA256: the handshake key, the stable key id and the SipHash keys from a configured key
 * (32 bytes; its text form and key files are `key_file.ts`), and the two session keys of a handshake.
 * Nothing is ever encrypted directly under the configured key.
 */
import {
  KEY_ID_LENGTH,
  KEY_LENGTH,
  LABEL_HANDSHAKE_KEY,
  LABEL_KEY_ID,
  LABEL_SALT,
  LABEL_SESSION_KEYS,
  LABEL_SIP_KEYS,
} from "./constants.ts";
import { SIP_KEY_LENGTH, type SipKey, sipKey } from "./siphash.ts";
import { keyIdValue } from "./wire.ts";

const utf8 = new TextEncoder();

async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, bits: number): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", ikm.slice(), "HKDF", false, ["deriveBits"]);
  const out = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: salt.slice(), info: info.slice() },
    k,
    bits,
  );
  return new Uint8Array(out);
}

/** The SipHash keys of a configured key: the responder's synchronous checks need no WebCrypto call. */
export interface HandshakeSipKeys {
  /** Wire key id of a period (`key_id.ts`). */
  readonly keyId: SipKey;
  /** MAC1 of initiations: proves knowledge of the key before any queue or AEAD. */
  readonly mac1: SipKey;
  /** Keystream of a cookie reply's sealed cookie. */
  readonly cookieSeal: SipKey;
  /** Tag of a cookie reply. */
  readonly cookieTag: SipKey;
}

/** Everything a configured key yields for handshakes. */
export interface HandshakeKey {
  /** Stable 8-byte key id: names the key inside this process, never sent (the wire id rotates). */
  readonly keyId: Uint8Array;
  /** The stable key id as a bigint, for Map lookups. */
  readonly keyIdValue: bigint;
  /** SipHash keys for the wire key id, MAC1 and cookie replies. */
  readonly sip: HandshakeSipKeys;
  /** The handshake key as bytes: the HKDF salt of session keys. */
  readonly secret: Uint8Array;
  /** The handshake key for AES-256-GCM sealing of handshake payloads. */
  readonly aead: CryptoKey;
}

/** Derives the handshake key and key id from a configured key (HKDF-SHA256, salt "vpn/1", distinct infos). */
export async function deriveHandshakeKey(configured: Uint8Array): Promise<HandshakeKey> {
  if (configured.length !== KEY_LENGTH) {
    throw new RangeError(`a key is ${KEY_LENGTH} bytes, got ${configured.length}`);
  }
  const salt = utf8.encode(LABEL_SALT);
  const secret = await hkdf(configured, salt, utf8.encode(LABEL_HANDSHAKE_KEY), 256);
  const keyId = await hkdf(configured, salt, utf8.encode(LABEL_KEY_ID), KEY_ID_LENGTH * 8);
  const s = await hkdf(configured, salt, utf8.encode(LABEL_SIP_KEYS), 4 * SIP_KEY_LENGTH * 8);
  const sip = {
    keyId: sipKey(s, 0),
    mac1: sipKey(s, SIP_KEY_LENGTH),
    cookieSeal: sipKey(s, 2 * SIP_KEY_LENGTH),
    cookieTag: sipKey(s, 3 * SIP_KEY_LENGTH),
  };
  s.fill(0);
  const aead = await crypto.subtle.importKey("raw", secret.slice(), "AES-GCM", false, ["encrypt", "decrypt"]);
  return { keyId, keyIdValue: keyIdValue(keyId), sip, secret, aead };
}

/** The two AES-256-GCM keys of one session. */
export interface SessionKeys {
  /** Client -> server. */
  initiatorToResponder: Uint8Array;
  /** Server -> client. */
  responderToInitiator: Uint8Array;
}

/**
 * Session keys: HKDF-SHA256(ikm = X25519 shared secret, salt = handshake key,
 * info = "vpn/1 session keys" || SHA-256(initiation || response)), 64 bytes split in two.
 */
export async function deriveSessionKeys(
  sharedSecret: Uint8Array,
  handshakeSecret: Uint8Array,
  transcriptHash: Uint8Array,
): Promise<SessionKeys> {
  const label = utf8.encode(LABEL_SESSION_KEYS);
  const info = new Uint8Array(label.length + transcriptHash.length);
  info.set(label);
  info.set(transcriptHash, label.length);
  const okm = await hkdf(sharedSecret, handshakeSecret, info, 512);
  return { initiatorToResponder: okm.slice(0, 32), responderToInitiator: okm.slice(32, 64) };
}
