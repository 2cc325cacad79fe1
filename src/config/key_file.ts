/**
 * The configured 32-byte key: generation, base64 text form and key files.
 * Key files (and config files holding a key) are created 0600 and refused when group or others can read
 * them or when another user owns them (that user could read or replace the key).
 */
import { encodeBase64 } from "../net/base64.ts";
import { KEY_LENGTH } from "../protocol/constants.ts";

/** A key that cannot be used: says where it came from and what is wrong. */
export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}

/** A new random key. */
export function generateKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(KEY_LENGTH));
}

/** The key's text form: 44 characters of standard base64. */
export function keyToBase64(key: Uint8Array): string {
  return encodeBase64(key);
}

/** Parse a key's text form; `source` names where it came from for the error message. */
export function keyFromBase64(text: string, source: string): Uint8Array<ArrayBuffer> {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) {
    throw new KeyError(
      `${source}: not a key (expected 32 bytes as 44 characters of base64 ending in "=", ` +
        `as printed by 'vpn genkey'; got ${t.length} characters)`,
    );
  }
  const bin = atob(t);
  const out = new Uint8Array(KEY_LENGTH);
  for (let i = 0; i < KEY_LENGTH; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Refuses a file that holds a key when group or others may read it or another user owns it; `label`
 * starts the message (e.g. `key file PATH`).
 */
export function checkPrivate(label: string, path: string, info: Deno.FileInfo): void {
  const mode = info.mode ?? 0;
  if ((mode & 0o077) !== 0) {
    throw new KeyError(
      `${label}: mode ${(mode & 0o777).toString(8).padStart(4, "0")} lets group or others read it; ` +
        `allowed: 0600 or 0400 (run: chmod 600 ${path})`,
    );
  }
  const uid = Deno.uid();
  if (info.uid !== null && uid !== null && info.uid !== uid) {
    throw new KeyError(
      `${label}: owned by uid ${info.uid}, not by the user running vpn (uid ${uid}); ` +
        `allowed: a file of this user (run: chown ${uid} ${path})`,
    );
  }
}

/** Read a key file, refusing one that group or others may read. */
export function readKeyFile(path: string): Uint8Array<ArrayBuffer> {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new KeyError(`key file ${path}: does not exist`);
    if (e instanceof Deno.errors.PermissionDenied) throw new KeyError(`key file ${path}: permission denied`);
    throw new KeyError(`key file ${path}: ${(e as Error).message}`);
  }
  if (!info.isFile) throw new KeyError(`key file ${path}: not a regular file`);
  checkPrivate(`key file ${path}`, path, info);
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new KeyError(`key file ${path}: ${(e as Error).message}`);
  }
  return keyFromBase64(text, `key file ${path}`);
}

/**
 * Create the folder of a secret file (key, config) when it is missing, mode 0700: a fresh host has no
 * /etc/vpn. An existing folder is left as it is.
 */
export function ensurePrivateDir(path: string): void {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (dir === "") return;
  try {
    Deno.statSync(dir);
    return;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(dir, 0o700); // the mode given to mkdir is filtered by the umask
}

/** Create a key file with a new key, mode 0600 (and its folder, 0700, if missing); fails if it exists. */
export function createKeyFile(path: string): Uint8Array<ArrayBuffer> {
  const key = generateKey();
  try {
    ensurePrivateDir(path);
    Deno.writeTextFileSync(path, keyToBase64(key) + "\n", { mode: 0o600, createNew: true });
    // The mode given at creation is filtered by the umask; make sure it is exactly 0600.
    Deno.chmodSync(path, 0o600);
  } catch (e) {
    throw new KeyError(`key file ${path}: cannot create it: ${(e as Error).message}`);
  }
  return key;
}

/** Where a key comes from, as resolved from flags, environment and config (see config.ts). */
export type KeySource =
  | { readonly kind: "inline"; readonly key: Uint8Array; readonly source: string }
  | { readonly kind: "file"; readonly path: string; readonly source: string };

/**
 * The key a `KeySource` names. A missing key file is created (0600) when `createIfMissing`;
 * `created` then tells the caller to say so.
 */
export function loadKey(src: KeySource, createIfMissing: boolean): { key: Uint8Array; created: boolean } {
  if (src.kind === "inline") return { key: src.key, created: false };
  let exists = true;
  try {
    Deno.lstatSync(src.path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new KeyError(`key file ${src.path}: ${(e as Error).message}`);
    }
    exists = false;
  }
  if (exists) return { key: readKeyFile(src.path), created: false };
  if (!createIfMissing) {
    throw new KeyError(
      `key file ${src.path}: does not exist; copy the server's key file here, or pass --key-file, --key or VPN_KEY`,
    );
  }
  return { key: createKeyFile(src.path), created: true };
}
