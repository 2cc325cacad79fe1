/**
 * `post_up` / `pre_down` hooks: commands given as argv arrays, run one after another without a shell (a
 * user who wants one writes `["sh", "-c", "..."]`), with the tunnel's name and addresses in the environment.
 */
import { type Cidr, formatCidr } from "../net/cidr.ts";
import type { HookCommand } from "../config/config.ts";
import { log } from "../ops/log.ts";

/** A hook command could not run or exited with a failure. */
export class HookError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HookError";
  }
}

/** A hook that runs longer than this is killed and counts as failed: a stop must not hang on it. */
const HOOK_TIMEOUT_MS = 30_000;

/** The environment hooks see: VPN_ROLE, VPN_TUN, VPN_ADDRESS and (when set) VPN_ADDRESS6. */
export function hookEnv(
  role: "server" | "client",
  tun: string,
  address: Cidr | null,
  address6: Cidr | null,
): Record<string, string> {
  const env: Record<string, string> = { VPN_ROLE: role, VPN_TUN: tun };
  if (address) env.VPN_ADDRESS = formatCidr(address);
  if (address6) env.VPN_ADDRESS6 = formatCidr(address6);
  return env;
}

/** Our environment without the key: a hook has no business with it (nor do the programs it starts). */
function inherited(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.VPN_KEY;
  return env;
}

/** Run `commands` in order; throws HookError at the first that fails (the rest do not run). */
export async function runHooks(
  which: "post_up" | "pre_down",
  commands: readonly HookCommand[],
  env: Record<string, string>,
): Promise<void> {
  for (const [cmd, ...args] of commands) {
    const shown = [cmd, ...args].join(" ");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd, {
        args,
        env: { ...inherited(), ...env },
        clearEnv: true,
        stdin: "null",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (e) {
      throw new HookError(`${which} ${JSON.stringify(shown)}: cannot run it: ${(e as Error).message}`);
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, HOOK_TIMEOUT_MS);
    const status = await child.status.finally(() => clearTimeout(timer));
    if (!status.success) {
      const how = status.signal ? `killed by ${status.signal}` : `exit ${status.code}`;
      throw new HookError(`${which} ${JSON.stringify(shown)} failed (${how})`);
    }
    log.info(`${which} ran`, { command: shown });
  }
}
