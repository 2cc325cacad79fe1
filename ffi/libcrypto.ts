/**
 * AES-256-GCM from the system OpenSSL (`libcrypto.so.3`, else `libcrypto.so`, else `libcrypto.so.1.1`)
 * through synchronous FFI.
 * Bytes and numbers in, bytes and numbers out; the packet layout and the `PacketAead` contract live in
 * `src/dataplane/aead_openssl.ts`.
 *
 * One EVP_CIPHER_CTX per direction is keyed once; per message only the IV is set
 * (`EVP_*Init_ex(ctx, NULL, NULL, NULL, iv)` keeps the key schedule), then AAD, data, final and tag.
 * Nothing is allocated per call: the nonce and tag travel through two buffers the key owns. The library
 * is opened lazily, on the first `openLibcrypto()`.
 */

// Every symbol here is in OpenSSL 1.1's EVP API as in 3's, with the same signature; the 3.x-only calls
// (EVP_CIPHER_fetch, EVP_*Init_ex2, OSSL_PARAM getters, the EVP_CIPHER_CTX_get_* names whose 1.1 spellings
// became macros in 3) are deliberately not used, so one binding serves both.
const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_EncryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;

/** The loaded libcrypto symbols. */
export type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The sonames tried, in order: OpenSSL 3, the unversioned development link, OpenSSL 1.1. */
export const LIBCRYPTO_NAMES: readonly string[] = ["libcrypto.so.3", "libcrypto.so", "libcrypto.so.1.1"];
// 1.1 and 3 give these the same values (aliases of EVP_CTRL_AEAD_GET_TAG/SET_TAG since 1.1.0).
const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
const AES_256_KEY_LENGTH = 32;
const GCM_IV_LENGTH = 12;
/** GCM tag bytes. */
export const GCM_TAG_LENGTH = 16;

/** libcrypto could not be loaded or failed its self-test; says which names were tried and why. */
export class LibcryptoUnavailableError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "LibcryptoUnavailableError";
  }
}

/** An OpenSSL call failed, or a key was used after `dispose()`. */
export class LibcryptoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LibcryptoError";
  }
}

/** A libcrypto that loaded with every symbol and passed the caller's check. */
export interface LoadedLibcrypto {
  /** The soname that was opened. */
  readonly name: string;
  readonly symbols: Libcrypto;
  /** Candidates tried before it, each with why it was skipped. */
  readonly skipped: readonly string[];
  /** Unloads the library; its keys must be disposed first. */
  close(): void;
}

/**
 * Opens the first of `names` that loads with every symbol and on which `check` (the caller's known-answer
 * self-test) does not throw; a name that is missing, lacks a symbol or fails the check (then closed again)
 * is skipped with its reason. Throws `LibcryptoUnavailableError` listing every reason when none is usable.
 */
export function loadLibcrypto(names: readonly string[], check: (L: Libcrypto) => void): LoadedLibcrypto {
  const skipped: string[] = [];
  for (const name of names) {
    let dl: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      dl = Deno.dlopen(name, SYMBOLS);
    } catch (e) {
      skipped.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    try {
      check(dl.symbols);
    } catch (e) {
      dl.close();
      skipped.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    return { name, symbols: dl.symbols, skipped, close: () => dl.close() };
  }
  throw new LibcryptoUnavailableError(
    `cannot load OpenSSL libcrypto (${skipped.join("; ")}); install OpenSSL 3 (Debian: libssl3) or 1.1 ` +
      `and run with --allow-ffi, or choose the webcrypto backend`,
  );
}

let loaded: LoadedLibcrypto | null = null;

/**
 * `loadLibcrypto(LIBCRYPTO_NAMES, check)` once per process; later calls return the same library. Throws
 * `LibcryptoUnavailableError` when none is usable or FFI is not permitted (not cached: a later call retries).
 */
export function openLibcrypto(check: (L: Libcrypto) => void): LoadedLibcrypto {
  loaded ??= loadLibcrypto(LIBCRYPTO_NAMES, check);
  return loaded;
}

/** Keeps OpenSSL inside the buffers it is given: it reads and writes through raw pointers. */
function checkLengths(aad: Uint8Array, aadLength: number, data: Uint8Array, length: number): void {
  if (!(aadLength >= 0 && aadLength <= aad.length && length >= 0 && length <= data.length)) {
    throw new RangeError("AES-256-GCM: a length does not fit its buffer");
  }
}

/** One AES-256-GCM key: an encrypting and a decrypting context, keyed once. */
export class Aes256Gcm {
  /** The 12-byte nonce of the next `seal` or `open`; the caller writes it (no allocation per message). */
  readonly iv = new Uint8Array(GCM_IV_LENGTH);
  /** The 16-byte tag: written by `seal`, read by `open`. */
  readonly tag = new Uint8Array(GCM_TAG_LENGTH);
  #enc: Deno.PointerValue;
  #dec: Deno.PointerValue;
  readonly #L: Libcrypto;
  readonly #outLen = new Int32Array(1);

  /** Keys both contexts with the 32-byte `key` (the caller may wipe it afterwards). */
  constructor(L: Libcrypto, key: Uint8Array) {
    if (key.length !== AES_256_KEY_LENGTH) {
      throw new LibcryptoError(`AES-256-GCM key must be ${AES_256_KEY_LENGTH} bytes, got ${key.length}`);
    }
    this.#L = L;
    const cipher = L.EVP_aes_256_gcm();
    this.#enc = L.EVP_CIPHER_CTX_new();
    this.#dec = L.EVP_CIPHER_CTX_new();
    if (this.#enc === null || this.#dec === null) {
      this.dispose();
      throw new LibcryptoError("EVP_CIPHER_CTX_new failed (out of memory)");
    }
    if (
      L.EVP_EncryptInit_ex(this.#enc, cipher, null, key, null) !== 1 ||
      L.EVP_DecryptInit_ex(this.#dec, cipher, null, key, null) !== 1
    ) {
      this.dispose();
      throw new LibcryptoError("EVP_*Init_ex failed to key AES-256-GCM");
    }
  }

  /**
   * Encrypts `data[0, length)` in place under `iv`, authenticating `aad[0, aadLength)` too, and writes the
   * tag into `tag`. Lengths beyond their buffers are refused (RangeError) before OpenSSL sees a pointer.
   */
  seal(aad: Uint8Array, aadLength: number, data: Uint8Array, length: number): void {
    const ctx = this.#enc;
    if (ctx === null) throw new LibcryptoError("AES-GCM key used after dispose()");
    checkLengths(aad, aadLength, data, length);
    const L = this.#L, out = this.#outLen;
    if (
      L.EVP_EncryptInit_ex(ctx, null, null, null, this.iv) !== 1 ||
      L.EVP_EncryptUpdate(ctx, null, out, aad, aadLength) !== 1 ||
      L.EVP_EncryptUpdate(ctx, data, out, data, length) !== 1 ||
      L.EVP_EncryptFinal_ex(ctx, data, out) !== 1 ||
      L.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LENGTH, this.tag) !== 1
    ) throw new LibcryptoError("OpenSSL AES-256-GCM seal failed");
  }

  /**
   * Decrypts `data[0, length)` in place under `iv`, `aad[0, aadLength)` and `tag`; true when the tag matches
   * (on false the bytes of `data` are unspecified). Lengths are checked as in `seal`.
   */
  open(aad: Uint8Array, aadLength: number, data: Uint8Array, length: number): boolean {
    const ctx = this.#dec;
    if (ctx === null) throw new LibcryptoError("AES-GCM key used after dispose()");
    checkLengths(aad, aadLength, data, length);
    const L = this.#L, out = this.#outLen;
    if (
      L.EVP_DecryptInit_ex(ctx, null, null, null, this.iv) !== 1 ||
      L.EVP_DecryptUpdate(ctx, null, out, aad, aadLength) !== 1 ||
      L.EVP_DecryptUpdate(ctx, data, out, data, length) !== 1 ||
      L.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LENGTH, this.tag) !== 1
    ) throw new LibcryptoError("OpenSSL AES-256-GCM open failed");
    // Final writes no bytes for GCM; it only compares the tag.
    return L.EVP_DecryptFinal_ex(ctx, data, out) === 1;
  }

  /** Frees both contexts (EVP_CIPHER_CTX_free wipes the key schedule); the key is unusable afterwards. */
  dispose(): void {
    if (this.#enc !== null) this.#L.EVP_CIPHER_CTX_free(this.#enc);
    if (this.#dec !== null) this.#L.EVP_CIPHER_CTX_free(this.#dec);
    this.#enc = null;
    this.#dec = null;
  }
}
