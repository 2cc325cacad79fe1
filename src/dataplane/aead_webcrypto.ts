/**
 * The reference `PacketAead`: AES-256-GCM through WebCrypto (`crypto.subtle`). Always available, but
 * every packet is an async op (~10–15 µs) that allocates its result, so it serves as fallback and as
 * the cross-check of the OpenSSL backend.
 */
import type { AeadBackend, PacketAead } from "../protocol/aead.ts";
import { DATA_HEADER_LENGTH as HEADER, DATA_OVERHEAD as OVERHEAD } from "../protocol/constants.ts";

/** WebCrypto does not permit using a key after `dispose()`; this says so. */
export class WebCryptoAeadDisposedError extends Error {
  constructor() {
    super("AES-GCM key used after dispose()");
    this.name = "WebCryptoAeadDisposedError";
  }
}

/** A view of `buf[from, to)` (packet buffers are plain ArrayBuffers; WebCrypto's typings want that said). */
function view(buf: Uint8Array, from: number, to: number): Uint8Array<ArrayBuffer> {
  return buf.subarray(from, to) as Uint8Array<ArrayBuffer>;
}

/**
 * Writes the nonce of the packet in `buf` into `iv` (one per key, reused: WebCrypto copies the algorithm
 * parameters before `encrypt`/`decrypt` return their promise).
 */
function nonceOf(buf: Uint8Array, iv: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  for (let i = 0; i < 8; i++) iv[4 + i] = buf[5 + i];
  return iv;
}

class WebCryptoPacketAead implements PacketAead {
  readonly kind = "webcrypto" as const;
  private readonly iv = new Uint8Array(12);
  constructor(private key: CryptoKey | null) {}

  private live(): CryptoKey {
    if (this.key === null) throw new WebCryptoAeadDisposedError();
    return this.key;
  }

  async sealOne(buf: Uint8Array, len: number): Promise<void> {
    const key = this.live();
    if (!(len >= 0 && OVERHEAD + len <= buf.length)) {
      throw new RangeError(
        `seal: ${len}-byte plaintext needs a ${OVERHEAD + len}-byte buffer, got ${buf.length}`,
      );
    }
    // WebCrypto copies its inputs when called, so views suffice and the in-place write below cannot race.
    const out = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonceOf(buf, this.iv), additionalData: view(buf, 0, HEADER), tagLength: 128 },
      key,
      view(buf, HEADER, HEADER + len),
    );
    buf.set(new Uint8Array(out), HEADER);
  }

  async openOne(buf: Uint8Array, len: number): Promise<number> {
    const key = this.live();
    if (!(len >= OVERHEAD && len <= buf.length)) return -1;
    let out: ArrayBuffer;
    try {
      out = await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: nonceOf(buf, this.iv),
          additionalData: view(buf, 0, HEADER),
          tagLength: 128,
        },
        key,
        view(buf, HEADER, len),
      );
    } catch {
      return -1; // OperationError: tag mismatch
    }
    buf.set(new Uint8Array(out), HEADER);
    return out.byteLength;
  }

  dispose(): void {
    this.key = null;
  }
}

/** The WebCrypto `AeadBackend`. */
export function createWebCryptoBackend(): AeadBackend {
  return {
    kind: "webcrypto",
    createKey: async (raw: Uint8Array): Promise<PacketAead> => {
      if (raw.length !== 32) throw new RangeError(`AES-256-GCM key must be 32 bytes, got ${raw.length}`);
      const key = await crypto.subtle.importKey("raw", raw.slice(), "AES-GCM", false, ["encrypt", "decrypt"]);
      return new WebCryptoPacketAead(key);
    },
  };
}
