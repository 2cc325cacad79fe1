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

/** Which implementation does the packet crypto. */
export type AeadKind = "openssl" | "webcrypto";

/** One AES-256-GCM key for one direction of one session, keyed once. */
export interface PacketAead {
  /** The backend that made this key. */
  readonly kind: AeadKind;
  /**
   * Seals `count` packets in place. For packet i, `bufs[i]` holds the header at [0, 13) and
   * `lens[i]` bytes of plaintext at 13; the ciphertext overwrites the plaintext and the tag follows,
   * so `bufs[i].length >= 29 + lens[i]` is required (else a RangeError, nothing written past the end).
   */
  seal(bufs: readonly Uint8Array[], lens: Int32Array, count: number): void | Promise<void>;
  /**
   * Opens `count` packets in place; `lens[i]` is the full datagram length. On success `lens[i]` becomes
   * the plaintext length (plaintext at 13), on failure (short, too long for the buffer, bad tag) -1;
   * a failed packet's bytes after the header are then unspecified (drop it).
   */
  open(bufs: readonly Uint8Array[], lens: Int32Array, count: number): void | Promise<void>;
  /** Seals one packet (same layout as `seal`); no arrays needed. */
  sealOne(buf: Uint8Array, plaintextLength: number): void | Promise<void>;
  /** Opens one datagram of `length` bytes; returns the plaintext length, or -1 when it does not authenticate. */
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
