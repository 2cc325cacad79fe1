/**
 * The packet AEAD (AES-256-GCM) contract that sessions seal and open with; implementations live in
 * `src/dataplane/` (WebCrypto, OpenSSL through FFI) and are picked by `src/dataplane/aead_select.ts`.
 *
 * Packets are sealed and opened in place in the datagram buffer: bytes [0, 13) are the data header
 * (the AAD; its counter at [5, 13) gives the nonce 0x00000000 || counter), the plaintext starts at 13
 * and the 16-byte tag follows it. Methods return `void`/`number` from a synchronous backend (OpenSSL)
 * and a Promise from an asynchronous one (WebCrypto); callers write `if (r instanceof Promise) await r`
 * so the synchronous path costs no promise.
 */

/** The implementations of the packet crypto. */
export const AEAD_KINDS = ["openssl", "webcrypto"] as const;
/** Which implementation does the packet crypto. */
export type AeadKind = typeof AEAD_KINDS[number];

/** One AES-256-GCM key for one direction of one session, keyed once. */
export interface PacketAead {
  /** The backend that made this key. */
  readonly kind: AeadKind;
  /**
   * Seals one packet in place: `buf` holds the header at [0, 13) and `plaintextLength` bytes of plaintext
   * at 13; the ciphertext overwrites the plaintext and the tag follows, so `buf.length >= 29 +
   * plaintextLength` is required (else a RangeError, nothing written past the end).
   */
  sealOne(buf: Uint8Array, plaintextLength: number): void | Promise<void>;
  /**
   * Opens one datagram of `length` bytes in place; returns the plaintext length (plaintext at 13), or -1
   * when it is short, too long for the buffer or does not authenticate (its bytes after the header are
   * then unspecified: drop it).
   */
  openOne(buf: Uint8Array, length: number): number | Promise<number>;
  /** Releases native state and forgets the key; the object is unusable afterwards. */
  dispose(): void;
}

/** Makes `PacketAead` keys of one kind. */
export interface AeadBackend {
  /** Kind of the keys it makes. */
  readonly kind: AeadKind;
  /** Imports a 32-byte raw key (the caller may wipe `raw` afterwards). */
  createKey(raw: Uint8Array): Promise<PacketAead>;
}
