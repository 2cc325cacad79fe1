/**
 * `/run/vpn/<tun>.pid`: which process serves a TUN device and from which config file, so `vpn peer` can tell
 * the running server to reload (SIGHUP) after it edited that file.
 */
import { ControlError, ensureRunDir } from "./control.ts";
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

/**
 * Write this process's pid file (0600) once the run folder is checked; removed by `cleanup`. Created with
 * O_CREAT|O_EXCL (never through a symlink); a stale one is removed first only when lstat shows a regular
 * file of ours, anything else at the path is refused and left alone.
 */
export function writePidFile(cleanup: UndoLog, tun: string, config: string | null): void {
  ensureRunDir(controlDir());
  const path = pidFilePath(tun);
  const body: PidFile = { pid: Deno.pid, config: config === null ? null : Deno.realPathSync(config) };
  removeStaleOwnFile(path, "pid file");
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  } catch (e) {
    throw new ControlError(
      `pid file ${path}: cannot create it: ${(e as Error).message}; remove what is there`,
    );
  }
  try {
    f.writeSync(new TextEncoder().encode(JSON.stringify(body) + "\n"));
  } finally {
    f.close();
  }
  cleanup.add(`remove ${path}`, () => removeStaleOwnFile(path, "pid file"));
}

/** Removes `path` when lstat shows a regular file owned by us; refuses anything else (a symlink, a folder). */
function removeStaleOwnFile(path: string, what: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new ControlError(`${what} ${path}: ${(e as Error).message}`);
  }
  const uid = Deno.uid();
  if (!info.isFile || (info.uid !== null && uid !== null && info.uid !== uid)) {
    const kind = info.isSymlink
      ? "a symlink"
      : info.isFile
      ? `a file of uid ${info.uid}`
      : "not a regular file";
    throw new ControlError(
      `${what} ${path}: exists and is ${kind}, not a regular file of uid ${uid}; remove it`,
    );
  }
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** The pid file of `tun`, or null when there is none (or it is not a regular file of root or of ours). */
export function readPidFile(tun: string): PidFile | null {
  try {
    const info = Deno.lstatSync(pidFilePath(tun));
    const uid = Deno.uid();
    if (!info.isFile || (info.uid !== null && uid !== null && info.uid !== uid && info.uid !== 0)) {
      return null;
    }
    const v = JSON.parse(Deno.readTextFileSync(pidFilePath(tun)));
    if (typeof v?.pid !== "number" || !Number.isInteger(v.pid) || v.pid <= 1) return null;
    return { pid: v.pid, config: typeof v.config === "string" ? v.config : null };
  } catch {
    return null;
  }
}
