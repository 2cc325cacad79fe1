/**
 * Host routing policy the server changes: IP forwarding (via /proc/sys) and source NAT (masquerade) via
 * nft, or iptables when nft is missing. Routes and addresses themselves are ioctls in `ffi/interface.ts`.
 */
import { invalidInterfaceName } from "../net/interface_name.ts";
import { requireCidr } from "../net/cidr.ts";

const FORWARDING_V4 = "/proc/sys/net/ipv4/conf/all/forwarding";
const FORWARDING_V6 = "/proc/sys/net/ipv6/conf/all/forwarding";

/** Changing forwarding or NAT failed; the message names the command or file and what to do. */
export class RoutingError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RoutingError";
  }
}

function setSysctlFlag(path: string, on: boolean): boolean {
  try {
    const previous = Deno.readTextFileSync(path).trim() !== "0";
    if (previous !== on) Deno.writeTextFileSync(path, on ? "1\n" : "0\n");
    return previous;
  } catch (e) {
    const hint = e instanceof Deno.errors.PermissionDenied ? ": run as root or with CAP_NET_ADMIN" : "";
    throw new RoutingError(`cannot set ${path} to ${on ? 1 : 0}: ${(e as Error).message}${hint}`, {
      cause: e,
    });
  }
}

/** Turn IPv4 forwarding on or off for all interfaces; returns the previous value (to restore it later). */
export function setIpv4Forwarding(on: boolean): boolean {
  return setSysctlFlag(FORWARDING_V4, on);
}

/** Turn IPv6 forwarding on or off for all interfaces; returns the previous value. */
export function setIpv6Forwarding(on: boolean): boolean {
  return setSysctlFlag(FORWARDING_V6, on);
}

/** A masquerade rule that was added; `remove` deletes exactly that rule (idempotent). */
export interface Masquerade {
  tool: "nft" | "iptables";
  /** Human-readable description of the rule, e.g. for the start-up log. */
  rule: string;
  remove: () => Promise<void>;
}

const SEARCH_PATH = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];

/** Absolute path of an executable found on PATH or in the sbin directories, or null. */
export function findTool(name: string): string | null {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== ""), ...SEARCH_PATH];
  for (const dir of dirs) {
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** Run a tool such as nft to completion; throws `RoutingError` with its stderr when it fails. */
export async function runTool(cmd: string, args: string[], stdin?: string): Promise<void> {
  let child;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    throw new RoutingError(`cannot run ${cmd}: ${(e as Error).message}`, { cause: e });
  }
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new RoutingError(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
}

let tableCounter = 0;

/**
 * Masquerade traffic from `sourceCidr` leaving through `outIface`. Uses nft (a table of its own named
 * `vpn_<pid>_<n>`, deleted whole on removal) or else iptables/ip6tables (one rule tagged with a comment,
 * deleted by the same spec). Throws `RoutingError` if neither tool exists or the rule is refused.
 */
export async function addMasquerade(outIface: string, sourceCidr: string): Promise<Masquerade> {
  const why = invalidInterfaceName(outIface);
  if (why !== null) throw new RoutingError(`cannot masquerade: bad interface name "${outIface}" (${why})`);
  let cidr;
  try {
    cidr = requireCidr(sourceCidr);
  } catch (e) {
    throw new RoutingError(`cannot masquerade: ${(e as Error).message}`, { cause: e });
  }
  const source = sourceCidr.includes("/") ? sourceCidr : `${sourceCidr}/${cidr.family === 4 ? 32 : 128}`;
  const rule = `masquerade ${source} out of ${outIface}`;
  const nft = findTool("nft");
  if (nft) {
    const family = cidr.family === 4 ? "ip" : "ip6";
    const table = `vpn_${Deno.pid}_${tableCounter++}`;
    const script = `table ${family} ${table} {\n` +
      `  chain postrouting {\n` +
      `    type nat hook postrouting priority srcnat; policy accept;\n` +
      `    oifname "${outIface}" ${family} saddr ${source} masquerade\n` +
      `  }\n}\n`;
    await runTool(nft, ["-f", "-"], script);
    let removed = false;
    return {
      tool: "nft",
      rule: `${rule} (nft table ${family} ${table})`,
      remove: async () => {
        if (removed) return;
        await runTool(nft, ["delete", "table", family, table]);
        removed = true;
      },
    };
  }
  const iptables = findTool(cidr.family === 4 ? "iptables" : "ip6tables");
  if (iptables) {
    const spec = [
      "-t",
      "nat",
      "POSTROUTING",
      "-s",
      source,
      "-o",
      outIface,
      "-m",
      "comment",
      "--comment",
      `vpn_${Deno.pid}`,
      "-j",
      "MASQUERADE",
    ];
    const withOp = (op: string) => ["-w", ...spec.slice(0, 2), op, ...spec.slice(2)];
    await runTool(iptables, withOp("-A"));
    let removed = false;
    return {
      tool: "iptables",
      rule: `${rule} (${iptables.split("/").pop()} nat POSTROUTING)`,
      remove: async () => {
        if (removed) return;
        await runTool(iptables, withOp("-D"));
        removed = true;
      },
    };
  }
  throw new RoutingError(
    `cannot ${rule}: neither nft nor ${cidr.family === 4 ? "iptables" : "ip6tables"} is installed ` +
      "(install the nftables package)",
  );
}
