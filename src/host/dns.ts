/**
 * Applying the resolvers a server pushes, for as long as the client runs: through systemd-resolved
 * (`resolvectl`, per link, reverted on stop) when it runs and /etc/resolv.conf points at it, else by
 * rewriting /etc/resolv.conf in place. The original is first saved in the state folder (/var/lib/vpn, or
 * VPN_STATE_DIR: persistent, so a crash followed by a reboot still finds it; not beside the file in /etc,
 * which a sandboxed unit keeps read-only) and written back on stop, or at the next start (or by
 * `vpn client --unblock`) after a crash. The file we write says so in its first line and carries a copy of
 * the original too, so a file of ours is never taken for the original even when the backup is lost, and a
 * file someone else wrote after us is never overwritten by the restore.
 * The file is rewritten in place, never renamed over, so a bind mount or symlink at its path keeps working.
 * A DNS step that fails is one error line with the fix; the client runs on without the pushed DNS.
 */
import { findTool, runTool } from "./routing.ts";
import type { Cleanup } from "./cleanup.ts";
import type { PushedConfig } from "../protocol/wire.ts";
import { log } from "../ops/log.ts";
import { controlDir } from "../ops/control_path.ts";

/** The file the C library's resolver reads. */
export const RESOLV_CONF = "/etc/resolv.conf";

/** The client's persistent state folder (VPN_STATE_DIR read when needed, not at import). */
export function stateDir(): string {
  return Deno.env.get("VPN_STATE_DIR") ?? "/var/lib/vpn";
}

/** Where the original resolv.conf is kept while a client has replaced it. */
export function resolvBackupPath(): string {
  return `${stateDir()}/resolv.conf.backup`;
}

const RESOLVED_SOCKET = "/run/systemd/resolve/io.systemd.Resolve";
/** What /etc/resolv.conf links to when systemd-resolved manages it. */
const RESOLVED_FILES = [
  "/run/systemd/resolve/stub-resolv.conf",
  "/run/systemd/resolve/resolv.conf",
  "/usr/lib/systemd/resolv.conf",
  "/lib/systemd/resolv.conf",
];
/** The first line of every resolv.conf we write (older versions wrote the same). */
const HEADER = "# written by vpn client (";
/** Then the lines of the original, each behind `#| `, for when the backup is lost. */
const COPY_MARK = "# the original file, line by line after '#| ' (restored when the client stops):";
const LOST = "# the original /etc/resolv.conf was lost (a vpn client was killed and its backup is gone): " +
  "put the resolvers back here\n";
const FIX_FILE =
  `let vpn write ${RESOLV_CONF} (systemd unit: ReadWritePaths=${RESOLV_CONF}) or set dns = false ` +
  "(--no-dns)";

/** A running client, told apart from a later process with the same pid (the backup outlives reboots). */
interface Owner {
  pid: number;
  boot?: string;
  start?: string;
}

interface Backup extends Owner {
  tun: string;
  original: string;
}

class DnsError extends Error {}

function readOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function bootId(): string | undefined {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function me(): Owner {
  return { pid: Deno.pid, boot: bootId(), start: startTime(Deno.pid) };
}

/** True when `o` is another process that still runs (same boot, same pid, same start time). */
function otherAlive(o: Owner): boolean {
  if (o.pid === Deno.pid) return false;
  if (o.boot !== undefined && o.boot !== bootId()) return false;
  const start = startTime(o.pid);
  if (start === undefined) return false;
  return o.start === undefined || o.start === start;
}

/** When `text` is a resolv.conf we wrote: its owner and the original it carries (null: none, older versions). */
function parseOurs(text: string | null): { owner: Owner | null; original: string | null } | null {
  if (text === null || !text.startsWith(HEADER)) return null;
  const lines = text.split("\n");
  const o = /^# owner pid (\d+) boot (\S+) start (\S+)$/.exec(lines[1] ?? "");
  const known = (v: string) => v === "-" ? undefined : v;
  const owner = o ? { pid: Number(o[1]), boot: known(o[2]), start: known(o[3]) } : null;
  const at = lines.indexOf(COPY_MARK);
  if (at < 0) return { owner, original: null };
  const pieces = lines.slice(at + 1);
  if (pieces.at(-1) === "") pieces.pop(); // the newline after the last piece
  if (pieces.some((p) => !p.startsWith("#| "))) return { owner, original: null };
  return { owner, original: pieces.map((p) => p.slice(3)).join("\n") };
}

/** The resolv.conf text for `c`, carrying `original`. */
export function resolvConfText(c: PushedConfig, tun: string, original: string, owner: Owner = me()): string {
  return `${HEADER}${tun}) while it runs; the original comes back when it stops\n` +
    `# owner pid ${owner.pid} boot ${owner.boot ?? "-"} start ${owner.start ?? "-"}\n` +
    c.dns.map((a) => `nameserver ${a}\n`).join("") +
    (c.search.length > 0 ? `search ${c.search.join(" ")}\n` : "") +
    `${COPY_MARK}\n` + original.split("\n").map((l) => `#| ${l}\n`).join("");
}

/** Refuses a state folder that is not a plain folder of ours closed to writers other than us. */
function checkStateDir(create: boolean): void {
  const dir = stateDir();
  const fix = "or set VPN_STATE_DIR to another folder";
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) || !create) throw e;
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      Deno.chmodSync(dir, 0o700); // the umask filters the mode given at creation
    } catch (e) {
      throw new DnsError(
        `cannot create the state folder ${dir}: ${(e as Error).message}; make it writable for vpn ` +
          `(systemd unit: StateDirectory=vpn) ${fix}`,
      );
    }
    info = Deno.lstatSync(dir);
  }
  if (!info.isDirectory) {
    throw new DnsError(`state folder ${dir}: not a folder (a symlink or file); remove it ${fix}`);
  }
  const uid = Deno.uid();
  if (info.uid !== null && uid !== null && info.uid !== uid) {
    throw new DnsError(`state folder ${dir}: owned by uid ${info.uid}, not by uid ${uid}; remove it ${fix}`);
  }
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o022) !== 0) {
    throw new DnsError(
      `state folder ${dir}: mode ${
        mode.toString(8).padStart(4, "0")
      } lets others write; chmod 700 ${dir} ${fix}`,
    );
  }
}

/** The backup, or null when there is none or it cannot be trusted (one warning saying why). */
function readBackup(): Backup | null {
  const path = resolvBackupPath();
  try {
    checkStateDir(false);
    const info = Deno.lstatSync(path);
    if (!info.isFile) throw new DnsError("not a plain file (a symlink?)");
    const b = JSON.parse(Deno.readTextFileSync(path));
    if (typeof b?.pid === "number" && typeof b?.tun === "string" && typeof b?.original === "string") return b;
    throw new DnsError("not a backup written by vpn");
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    log.warn("ignoring the resolv.conf backup", { file: path, error: (e as Error).message });
    return null;
  }
}

/** The original in a backup an older version kept in the run folder (gone after a reboot), or null. */
function legacyOriginal(): string | null {
  const path = `${controlDir()}/resolv.conf.backup`;
  try {
    if (!Deno.lstatSync(path).isFile) return null;
    const b = JSON.parse(Deno.readTextFileSync(path));
    if (typeof b?.original !== "string" || parseOurs(b.original) !== null) return null;
    return b.original;
  } catch {
    return null;
  }
}

/** Writes the backup atomically: a new private file (never through a symlink), synced, renamed over. */
function writeBackup(b: Backup): void {
  checkStateDir(true);
  const dir = stateDir();
  const tmp = `${dir}/.resolv.conf.backup.${Deno.pid}`;
  try {
    try {
      Deno.removeSync(tmp); // left by a killed process with our pid; unlinks a symlink, never follows it
    } catch { /* none */ }
    const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      f.writeSync(new TextEncoder().encode(JSON.stringify(b)));
      f.syncSync(); // on disk before the original is overwritten
    } finally {
      f.close();
    }
    Deno.renameSync(tmp, resolvBackupPath());
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* none */ }
    throw new DnsError(
      `cannot save the original ${RESOLV_CONF} in ${resolvBackupPath()}: ${
        (e as Error).message
      }; make ${dir} ` +
        `writable for vpn (systemd unit: StateDirectory=vpn) or set VPN_STATE_DIR`,
    );
  }
  try {
    const d = Deno.openSync(dir, { read: true });
    try {
      d.syncSync(); // the rename too
    } finally {
      d.close();
    }
  } catch { /* best effort */ }
}

/** Removes the backup (and, unless told not to, one an older version left in the run folder). */
function removeBackup(legacyToo = true): void {
  const paths = [resolvBackupPath(), ...(legacyToo ? [`${controlDir()}/resolv.conf.backup`] : [])];
  for (const path of paths) {
    try {
      Deno.removeSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        log.warn("cannot remove the resolv.conf backup", { file: path, error: (e as Error).message });
      }
    }
  }
}

/**
 * Writes `original` back unless the current file is not ours (someone wrote it after us: kept); either
 * way the backup goes. Throws a DnsError with the fix when the file cannot be written.
 */
function putBack(original: string): boolean {
  const current = readOrNull(RESOLV_CONF);
  if (current !== null && parseOurs(current) === null) {
    log.info("resolv.conf was rewritten by someone else after vpn; keeping it and dropping the backup", {
      file: RESOLV_CONF,
    });
    removeBackup();
    return false;
  }
  try {
    Deno.writeTextFileSync(RESOLV_CONF, original);
  } catch (e) {
    throw new DnsError(`cannot restore the original ${RESOLV_CONF}: ${(e as Error).message}; ${FIX_FILE}`);
  }
  removeBackup();
  return true;
}

/** Another running client that manages resolv.conf, by the backup or else by the file's owner line. */
function liveOwner(b: Backup | null): Owner | null {
  if (b !== null) return otherAlive(b) ? b : null;
  let ours;
  try {
    ours = parseOurs(readOrNull(RESOLV_CONF));
  } catch {
    return null;
  }
  return ours?.owner && otherAlive(ours.owner) ? ours.owner : null;
}

/**
 * Write back a resolv.conf replaced by a client that is no longer running: from its backup, or, with the
 * backup lost, from the copy inside a file of ours. Returns true when it did. Never throws: a failure is
 * one error line with the fix, and the backup stays for the next try.
 */
export function restoreStaleResolvConf(): boolean {
  return restoreStale() === "restored";
}

function restoreStale(b: Backup | null = readBackup()): "restored" | "nothing" | "failed" {
  try {
    if (liveOwner(b) !== null) return "nothing";
    if (b !== null) {
      if (!putBack(b.original)) return "nothing";
      log.info("restored resolv.conf left behind by a stopped client", { file: RESOLV_CONF, pid: b.pid });
      return "restored";
    }
    const ours = parseOurs(readOrNull(RESOLV_CONF));
    if (ours === null) return "nothing";
    const legacy = ours.original === null ? legacyOriginal() : null;
    const original = ours.original ?? legacy;
    if (original === null) {
      log.warn(
        "resolv.conf was written by a vpn client that is gone and its original is lost; replacing it",
        {
          file: RESOLV_CONF,
        },
      );
    }
    if (!putBack(original ?? LOST)) return "nothing";
    if (original !== null) {
      const from = legacy === null
        ? "the copy inside it (its backup was lost)"
        : "a backup in the run folder";
      log.info(`restored resolv.conf from ${from}`, { file: RESOLV_CONF });
    }
    return "restored";
  } catch (e) {
    log.error(
      e instanceof DnsError
        ? e.message
        : `cannot restore ${RESOLV_CONF}: ${(e as Error).message}; ${FIX_FILE}`,
    );
    return "failed";
  }
}

/** True when the C library's resolver asks systemd-resolved (a link to its files, or its stub address). */
function resolvConfUsesResolved(): boolean {
  try {
    if (Deno.lstatSync(RESOLV_CONF).isSymlink && RESOLVED_FILES.includes(Deno.realPathSync(RESOLV_CONF))) {
      return true;
    }
    return /^\s*nameserver\s+127\.0\.0\.5[34]\s*$/m.test(Deno.readTextFileSync(RESOLV_CONF));
  } catch {
    return false;
  }
}

/** Applies pushed DNS settings on one client; each change registers its undo once. */
export class DnsSettings {
  readonly #cleanup: Cleanup;
  readonly #tun: string;
  /** With the default route through the tunnel, every query goes to the pushed resolvers (`~.`). */
  readonly #everything: boolean;
  #applied: string | null = null;
  #resolvedUndo = false;
  /** The original resolv.conf, once ours is written. */
  #original: string | null = null;
  #blocked = false;

  constructor(cleanup: Cleanup, tun: string, everything: boolean) {
    this.#cleanup = cleanup;
    this.#tun = tun;
    this.#everything = everything;
  }

  /** At start: write back what a killed client left, so the original is what gets saved later. */
  recover(): void {
    const b = readBackup();
    const other = liveOwner(b);
    if (other !== null) {
      log.warn("another running client manages resolv.conf; not applying pushed DNS", { pid: other.pid });
      this.#blocked = true;
      return;
    }
    if (restoreStale(b) === "failed") {
      // Said once, with the fix; writing the pushed settings would fail the same way.
      log.info("not applying the pushed DNS settings: resolv.conf cannot be restored (above)", {});
      this.#blocked = true;
    }
  }

  /**
   * Apply `c` (again only when it changed); an empty config leaves the host's DNS as it is. Never throws:
   * a step that cannot be done is one error line with the fix, and the client runs on without it.
   */
  async apply(c: PushedConfig): Promise<void> {
    const key = JSON.stringify(c);
    if (this.#blocked || key === this.#applied) return;
    this.#applied = key;
    if (c.dns.length === 0) {
      // Never a resolv.conf without a resolver: keep the host's (or what was applied before).
      log.info("server pushes no resolvers; keeping the current DNS settings", {});
      return;
    }
    try {
      const resolvectl = findTool("resolvectl");
      if (resolvectl && exists(RESOLVED_SOCKET)) {
        if (resolvConfUsesResolved()) return await this.#viaResolved(resolvectl, c);
        log.info("systemd-resolved runs but resolv.conf does not point at it; writing the file instead", {
          file: RESOLV_CONF,
        });
      }
      this.#viaFile(c);
    } catch (e) {
      const msg = e instanceof DnsError ? e.message : (e as Error).message;
      log.error(`cannot apply the pushed DNS settings: ${msg}; running without them`);
    }
  }

  async #viaResolved(resolvectl: string, c: PushedConfig): Promise<void> {
    if (!this.#resolvedUndo) {
      this.#resolvedUndo = true;
      this.#cleanup.add(`resolvectl revert ${this.#tun}`, () => runTool(resolvectl, ["revert", this.#tun]));
    }
    const domains = [...(this.#everything ? ["~."] : []), ...c.search];
    try {
      await runTool(resolvectl, ["dns", this.#tun, ...c.dns]);
      await runTool(resolvectl, ["domain", this.#tun, ...domains]);
    } catch (e) {
      const fix = "let vpn reach systemd-resolved (D-Bus) or set dns = false (--no-dns)";
      throw new DnsError(`resolvectl: ${(e as Error).message}; ${fix}`);
    }
    log.info("DNS applied", {
      via: "resolvectl",
      link: this.#tun,
      dns: c.dns.join(","),
      search: domains.join(","),
    });
  }

  #viaFile(c: PushedConfig): void {
    if (this.#original === null) {
      let current: string | null;
      try {
        current = readOrNull(RESOLV_CONF);
      } catch (e) {
        throw new DnsError(`cannot read ${RESOLV_CONF}: ${(e as Error).message}; ${FIX_FILE}`);
      }
      // A backup recover() could not write back holds the original; a file of ours never is one.
      const stale = readBackup();
      const ours = parseOurs(current);
      const original = stale?.original ?? (ours ? ours.original ?? legacyOriginal() ?? LOST : current ?? "");
      writeBackup({ ...me(), tun: this.#tun, original });
      this.#write(c, original, stale === null);
      this.#original = original;
      this.#cleanup.add(`restore ${RESOLV_CONF}`, () => {
        if (putBack(original)) log.info("DNS restored", { file: RESOLV_CONF });
      });
    } else {
      this.#write(c, this.#original, false);
    }
    log.info("DNS applied", {
      via: RESOLV_CONF,
      dns: c.dns.join(","),
      search: c.search.join(",") || undefined,
    });
  }

  /** Writes our file; when that fails, a backup made just for it goes again (nothing was changed). */
  #write(c: PushedConfig, original: string, dropBackupOnFailure: boolean): void {
    try {
      Deno.writeTextFileSync(RESOLV_CONF, resolvConfText(c, this.#tun, original));
    } catch (e) {
      if (dropBackupOnFailure) removeBackup(false);
      throw new DnsError(`cannot write ${RESOLV_CONF}: ${(e as Error).message}; ${FIX_FILE}`);
    }
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
