/**
 * `/run/vpn/<tun>.pid`: which process serves a TUN device and from which config file, so `vpn peer` can tell
 * the running server to reload (SIGHUP) after it edited that file.
 */
import { controlDir } from "./control_path.ts";

/** Where the removal of the pid file is registered (the host cleanup log; only `add` is needed). */
export interface UndoLog {
  add(description: string, undo: () => void): void;
}

/** What the pid file holds. */
export interface PidFile {
  readonly pid: number;
  /** Absolute path of the config file the instance reads, or null without one. */
  readonly config: string | null;
}

/** Path of the pid file of the instance on TUN `tun`. */
export function pidFilePath(tun: string): string {
  return `${controlDir()}/${tun}.pid`;
}

/** Write this process's pid file (0600 in the 0700 run folder); removed by `cleanup`. */
export function writePidFile(cleanup: UndoLog, tun: string, config: string | null): void {
  Deno.mkdirSync(controlDir(), { recursive: true, mode: 0o700 });
  const path = pidFilePath(tun);
  const body: PidFile = { pid: Deno.pid, config: config === null ? null : Deno.realPathSync(config) };
  Deno.writeTextFileSync(path, JSON.stringify(body) + "\n", { mode: 0o600 });
  cleanup.add(`remove ${path}`, () => {
    try {
      Deno.removeSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  });
}

/** The pid file of `tun`, or null when there is none (or it is not one of ours). */
export function readPidFile(tun: string): PidFile | null {
  try {
    const v = JSON.parse(Deno.readTextFileSync(pidFilePath(tun)));
    if (typeof v?.pid !== "number" || !Number.isInteger(v.pid) || v.pid <= 1) return null;
    return { pid: v.pid, config: typeof v.config === "string" ? v.config : null };
  } catch {
    return null;
  }
}
