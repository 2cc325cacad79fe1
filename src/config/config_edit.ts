/**
 * Changing a config file safely: one writer at a time (an exclusive lock on `FILE.lock` next to it), and the
 * new text replaces the old in one rename, so readers (a server reloading on SIGHUP) see the old file or the
 * new one, never half of one. The lock file stays (removing it would race with the next writer).
 */
import { ConfigError } from "./config_error.ts";

/** How long a second writer waits for the lock before giving up. */
const LOCK_WAIT_MS = 10_000;

/** A held lock on a config file; `release()` lets the next writer in. */
export interface ConfigLock {
  release(): void;
}

/** Wait (up to LOCK_WAIT_MS) for the exclusive lock on `path`; a ConfigError names the file when it stays locked. */
export async function lockConfig(path: string): Promise<ConfigLock> {
  const lockPath = `${path}.lock`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockPath, { create: true, write: true, mode: 0o600 });
  } catch (e) {
    throw new ConfigError(
      `--config ${path}: cannot create the lock file ${lockPath}: ${(e as Error).message}`,
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), LOCK_WAIT_MS)
  );
  const got = await Promise.race([file.lock(true).then(() => "locked" as const), timedOut]);
  clearTimeout(timer);
  if (got === "timeout") {
    // The pending lock request ends with the process (the caller exits with this error).
    const waited = `${LOCK_WAIT_MS / 1000} s`;
    throw new ConfigError(
      `--config ${path}: locked by another 'vpn peer' command for ${waited} (lock file ${lockPath}); try again`,
    );
  }
  return {
    release() {
      try {
        file.unlockSync();
      } catch { /* closing unlocks too */ }
      file.close();
    },
  };
}

/** Replace `path` with `text` in one rename, keeping the file's permission bits (new files: 0600). */
export function replaceFile(path: string, text: string): void {
  let mode = 0o600;
  try {
    mode = (Deno.statSync(path).mode ?? 0o600) & 0o7777;
  } catch { /* a new file */ }
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    Deno.writeTextFileSync(tmp, text, { mode, createNew: true });
    Deno.chmodSync(tmp, mode);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
    throw new ConfigError(`--config ${path}: cannot write it: ${(e as Error).message}`);
  }
}
