/**
 * Applying the resolvers a server pushes, for as long as the client runs: through systemd-resolved
 * (`resolvectl`, per link, reverted on stop) when it runs, else by rewriting /etc/resolv.conf in place.
 * The original file is first saved in the run folder (with the owner's pid) and written back on stop;
 * a backup left by a killed client is written back at the next start (or by `vpn client --unblock`).
 * The file is rewritten in place, never renamed over, so a bind mount or symlink at its path keeps working.
 */
import { findTool, runTool } from "./routing.ts";
import type { Cleanup } from "./cleanup.ts";
import { controlDir } from "../ops/control_path.ts";
import type { PushedConfig } from "../protocol/wire.ts";
import { log } from "../ops/log.ts";

/** The file the C library's resolver reads. */
export const RESOLV_CONF = "/etc/resolv.conf";
/** Where the original is kept while the client runs (VPN_RUN_DIR read when needed, not at import). */
export function resolvBackupPath(): string {
  return `${controlDir()}/resolv.conf.backup`;
}

const RESOLVED_SOCKET = "/run/systemd/resolve/io.systemd.Resolve";

interface Backup {
  pid: number;
  tun: string;
  original: string;
}

function readBackup(): Backup | null {
  try {
    const b = JSON.parse(Deno.readTextFileSync(resolvBackupPath()));
    if (typeof b?.pid === "number" && typeof b?.tun === "string" && typeof b?.original === "string") return b;
    log.warn("ignoring an unreadable resolv.conf backup", { file: resolvBackupPath() });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      log.warn("ignoring an unreadable resolv.conf backup", {
        file: resolvBackupPath(),
        error: (e as Error).message,
      });
    }
  }
  return null;
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Write back a resolv.conf saved by a client that is no longer running. Returns true when it did; false
 * when there was nothing to restore or its owner still runs.
 */
export function restoreStaleResolvConf(): boolean {
  const b = readBackup();
  if (b === null || (b.pid !== Deno.pid && alive(b.pid))) return false;
  Deno.writeTextFileSync(RESOLV_CONF, b.original);
  Deno.removeSync(resolvBackupPath());
  log.info("restored resolv.conf left behind by a stopped client", { file: RESOLV_CONF, pid: b.pid });
  return true;
}

/** The resolv.conf text for `c`. */
export function resolvConfText(c: PushedConfig, tun: string): string {
  return `# written by vpn client (${tun}) while it runs; the original comes back when it stops\n` +
    c.dns.map((a) => `nameserver ${a}\n`).join("") +
    (c.search.length > 0 ? `search ${c.search.join(" ")}\n` : "");
}

/** Applies pushed DNS settings on one client; each change registers its undo once. */
export class DnsSettings {
  readonly #cleanup: Cleanup;
  readonly #tun: string;
  /** With the default route through the tunnel, every query goes to the pushed resolvers (`~.`). */
  readonly #everything: boolean;
  #applied: string | null = null;
  #undoRegistered = false;
  #blocked = false;

  constructor(cleanup: Cleanup, tun: string, everything: boolean) {
    this.#cleanup = cleanup;
    this.#tun = tun;
    this.#everything = everything;
  }

  /** At start: write back what a killed client left, so the original is what gets saved later. */
  recover(): void {
    const b = readBackup();
    if (b !== null && b.pid !== Deno.pid && alive(b.pid)) {
      log.warn("another running client manages resolv.conf; not applying pushed DNS", {
        pid: b.pid,
        tun: b.tun,
      });
      this.#blocked = true;
      return;
    }
    restoreStaleResolvConf();
  }

  /** Apply `c` (again only when it changed); an empty config leaves the host's DNS as it is. */
  async apply(c: PushedConfig): Promise<void> {
    const key = JSON.stringify(c);
    if (this.#blocked || key === this.#applied) return;
    if (c.dns.length === 0) {
      // Never a resolv.conf without a resolver: keep the host's (or what was applied before).
      log.info("server pushes no resolvers; keeping the current DNS settings", {});
      this.#applied = key;
      return;
    }
    this.#applied = key;
    const resolvectl = findTool("resolvectl");
    if (resolvectl && exists(RESOLVED_SOCKET)) await this.#viaResolved(resolvectl, c);
    else this.#viaFile(c);
  }

  async #viaResolved(resolvectl: string, c: PushedConfig): Promise<void> {
    if (!this.#undoRegistered) {
      this.#undoRegistered = true;
      this.#cleanup.add(`resolvectl revert ${this.#tun}`, () => runTool(resolvectl, ["revert", this.#tun]));
    }
    await runTool(resolvectl, ["dns", this.#tun, ...c.dns]);
    const domains = [...(this.#everything ? ["~."] : []), ...c.search];
    await runTool(resolvectl, ["domain", this.#tun, ...domains]);
    log.info("DNS applied", {
      via: "resolvectl",
      link: this.#tun,
      dns: c.dns.join(","),
      search: domains.join(","),
    });
  }

  #viaFile(c: PushedConfig): void {
    if (!this.#undoRegistered) {
      const original = Deno.readTextFileSync(RESOLV_CONF);
      const backup: Backup = { pid: Deno.pid, tun: this.#tun, original };
      Deno.mkdirSync(controlDir(), { recursive: true, mode: 0o700 });
      const f = Deno.openSync(resolvBackupPath(), { write: true, create: true, truncate: true, mode: 0o600 });
      try {
        f.writeSync(new TextEncoder().encode(JSON.stringify(backup)));
        f.syncSync(); // on disk before the original is overwritten
      } finally {
        f.close();
      }
      this.#undoRegistered = true;
      this.#cleanup.add(`restore ${RESOLV_CONF}`, () => {
        Deno.writeTextFileSync(RESOLV_CONF, original);
        Deno.removeSync(resolvBackupPath());
        log.info("DNS restored", { file: RESOLV_CONF });
      });
    }
    Deno.writeTextFileSync(RESOLV_CONF, resolvConfText(c, this.#tun));
    log.info("DNS applied", {
      via: RESOLV_CONF,
      dns: c.dns.join(","),
      search: c.search.join(",") || undefined,
    });
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
