/** The control socket a running instance serves: each connection gets one JSON status snapshot. */
import { controlDir, controlSocketPath } from "./control_path.ts";
import { log } from "./log.ts";
import type { StatusReport } from "./status_report.ts";

/** A listening control socket; `close()` removes it. */
export interface ControlServer {
  readonly path: string;
  close(): void;
}

/** The control socket or its folder cannot be used safely; the message says why and what to do. */
export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ControlError";
  }
}

/**
 * Serve `snapshot()` on `<dir>/<tun>.sock` (dir: /run/vpn or VPN_RUN_DIR), mode 0600 in a 0700 folder.
 * Never takes the socket of a live instance (another namespace may run the same TUN name); a socket
 * left by a killed one is replaced.
 */
export async function serveControl(
  tun: string,
  snapshot: () => StatusReport,
  dir: string = controlDir(),
): Promise<ControlServer> {
  ensureRunDir(dir);
  const path = controlSocketPath(tun, dir);
  await removeStaleSocket(path, tun);
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o600);
  const encoder = new TextEncoder();
  (async () => {
    for await (const conn of listener) {
      try {
        await conn.write(encoder.encode(JSON.stringify(snapshot())));
      } catch (e) {
        log.debug("control client went away", { error: (e as Error).message });
      } finally {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
    }
  })().catch((e) => log.debug("control socket closed", { error: (e as Error).message }));
  return {
    path,
    close() {
      try {
        listener.close();
      } catch { /* already closed */ }
      try {
        Deno.removeSync(path);
      } catch { /* gone */ }
    },
  };
}

/**
 * Creates the run folder 0700, or refuses one that is not a plain folder (lstat: not a symlink) owned by
 * root or by us and closed to group and others; called before anything is written in it.
 */
export function ensureRunDir(dir: string = controlDir()): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ControlError(`run folder ${dir}: ${(e as Error).message}`);
    }
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(dir, 0o700); // the umask filters the mode given at creation
    info = Deno.lstatSync(dir);
  }
  const fix = "or set VPN_RUN_DIR to another folder";
  if (!info.isDirectory) {
    throw new ControlError(`run folder ${dir}: not a folder (a symlink or file); remove it ${fix}`);
  }
  const uid = Deno.uid();
  if (info.uid !== null && uid !== null && info.uid !== uid && info.uid !== 0) {
    throw new ControlError(
      `run folder ${dir}: owned by uid ${info.uid}, not by root or the user running vpn (uid ${uid}); ` +
        `remove it ${fix}`,
    );
  }
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new ControlError(
      `run folder ${dir}: mode ${mode.toString(8).padStart(4, "0")} lets group or others in; ` +
        `allowed: 0700 (run: chmod 700 ${dir}) ${fix}`,
    );
  }
}

/** Removes a socket nobody answers on; refuses when one answers (a live instance) or the path is not a socket. */
async function removeStaleSocket(path: string, tun: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new ControlError(`control socket ${path}: ${(e as Error).message}`);
  }
  if (!info.isSocket) throw new ControlError(`control socket ${path}: exists and is not a socket; remove it`);
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    if (!(e instanceof Deno.errors.ConnectionRefused)) {
      throw new ControlError(`control socket ${path}: ${(e as Error).message}`);
    }
    Deno.removeSync(path); // left by a killed instance
    return;
  }
  conn.close();
  throw new ControlError(
    `control socket ${path} answers: another vpn runs with TUN name ${tun} (in this or another network ` +
      `namespace); stop it, or use another --tun or VPN_RUN_DIR`,
  );
}
