/**
 * Picks the data-path AEAD backend: OpenSSL's libcrypto through FFI when it loads and passes its
 * self-test, else WebCrypto.
 */
import { AEAD_KINDS, type AeadBackend, type AeadKind } from "../protocol/aead.ts";
import { LibcryptoUnavailableError } from "../../ffi/libcrypto.ts";
import { createOpenSslBackend } from "./aead_openssl.ts";
import { createWebCryptoBackend } from "./aead_webcrypto.ts";

/** What the configuration may ask for (`crypto`, `--crypto`); the first is the default. */
export const AEAD_CHOICES = ["auto", ...AEAD_KINDS] as const;
/** One of `AEAD_CHOICES`. */
export type AeadChoice = typeof AEAD_CHOICES[number];

/** The requested AEAD backend cannot be used (e.g. libcrypto is missing or FFI is not allowed). */
export class AeadUnavailableError extends Error {
  /** Which backend was asked for. */
  readonly kind: AeadKind;
  constructor(kind: AeadKind, detail: string) {
    super(`AEAD backend "${kind}" is unavailable: ${detail}`);
    this.name = "AeadUnavailableError";
    this.kind = kind;
  }
}

/** Result of `selectAeadBackend`. */
export interface SelectedAead {
  /** The backend to use. */
  backend: AeadBackend;
  /** Set when "auto" fell back to WebCrypto: why OpenSSL could not be used (worth one log line). */
  fallbackReason?: string;
}

/**
 * Picks the data-path AEAD. "auto": OpenSSL (libcrypto.so.3, then libcrypto.so, then libcrypto.so.1.1,
 * via FFI) when one loads and passes its self-test, else WebCrypto with the reason. "openssl" throws
 * `AeadUnavailableError` when it cannot be loaded; "webcrypto" always works.
 */
export function selectAeadBackend(choice: AeadChoice): Promise<SelectedAead> {
  if (choice === "webcrypto") return Promise.resolve({ backend: createWebCryptoBackend() });
  try {
    return Promise.resolve({ backend: createOpenSslBackend() });
  } catch (e) {
    if (!(e instanceof LibcryptoUnavailableError)) return Promise.reject(e);
    if (choice === "openssl") return Promise.reject(new AeadUnavailableError("openssl", e.message));
    const detail = e.message;
    return Promise.resolve({ backend: createWebCryptoBackend(), fallbackReason: detail });
  }
}
