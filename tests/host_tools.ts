/**
 * Preflight of `deno task test`: the suite runs as root and drives host tools (namespaces, ping, capture,
 * NAT, dropping privileges). Missing tools are installed with apt-get on Debian; otherwise, or with
 * `VPN_TEST_NO_INSTALL` set, the run stops at once with the one command that installs them.
 */

/** A program the suite runs by name (or a file it needs, by absolute path), and the Debian package with it. */
export interface HostTool {
  readonly tool: string;
  readonly pkg: string;
}

/** Every program the tests run by name (the tests' own `sh`, `cat`, `cp`... come with any Debian). */
export const HOST_TOOLS: readonly HostTool[] = [
  { tool: "ip", pkg: "iproute2" },
  { tool: "tc", pkg: "iproute2" },
  { tool: "ping", pkg: "iputils-ping" },
  { tool: "tcpdump", pkg: "tcpdump" },
  { tool: "nft", pkg: "nftables" },
  { tool: "setpriv", pkg: "util-linux" },
  { tool: "unshare", pkg: "util-linux" },
  { tool: "mount", pkg: "mount" },
  { tool: "sysctl", pkg: "procps" },
  // Observability tests: scrape the metrics endpoint, parse the exposition, verify the systemd units.
  { tool: "curl", pkg: "curl" },
  { tool: "/usr/lib/python3/dist-packages/prometheus_client/parser.py", pkg: "python3-prometheus-client" },
  { tool: "systemd-analyze", pkg: "systemd" },
];

/**
 * The tools not found as executable files in the folders of `path` (a `PATH` value); a tool given by absolute
 * path (a file the tests read, such as a Python module) is looked for there.
 */
export function missingTools(path: string, tools: readonly HostTool[] = HOST_TOOLS): HostTool[] {
  const dirs = path.split(":").filter((d) => d !== "");
  const exists = (file: string, executable: boolean) => {
    try {
      const info = Deno.statSync(file);
      return info.isFile && (!executable || ((info.mode ?? 0) & 0o111) !== 0);
    } catch {
      return false;
    }
  };
  return tools.filter(({ tool }) =>
    tool.startsWith("/") ? !exists(tool, false) : !dirs.some((d) => exists(`${d}/${tool}`, true))
  );
}

function packages(tools: HostTool[]): string[] {
  return [...new Set(tools.map((t) => t.pkg))];
}

function describe(tools: HostTool[]): string {
  return tools.map((t) => `${t.tool} (${t.pkg})`).join(", ");
}

async function aptGet(args: string[]): Promise<boolean> {
  try {
    const r = await new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdin: "null",
      stdout: "null",
    }).output();
    return r.success;
  } catch {
    return false; // no apt-get
  }
}

/** Checks (and on Debian installs) what the suite needs; returns the exit code, with one line on stderr. */
export async function preflight(env: Record<string, string | undefined>): Promise<number> {
  const stop = (why: string) => {
    console.error(`deno task test: ${why}`);
    return 1;
  };
  if (Deno.uid() !== 0) {
    return stop("the tests need root (network namespaces, TUN devices); run the same command as root");
  }
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return stop("/dev/net/tun is missing; load the TUN driver first: modprobe tun");
  }
  const path = env.PATH ?? "";
  let missing = missingTools(path);
  if (missing.length === 0) return 0;
  const install = `apt-get update && apt-get install -y ${packages(missing).join(" ")}`;
  if (env.VPN_TEST_NO_INSTALL !== undefined) {
    return stop(`missing ${describe(missing)}; install them with: ${install}`);
  }
  console.error(`deno task test: installing ${packages(missing).join(" ")} (missing ${describe(missing)})`);
  const ok = await aptGet(["update", "-qq"]) && await aptGet(["install", "-y", "-qq", ...packages(missing)]);
  if (!ok) return stop(`could not install ${describe(missing)}; install them with: ${install}`);
  missing = missingTools(path);
  if (missing.length > 0) {
    return stop(
      `installed, but ${describe(missing)} still not on PATH (${path}); add /usr/sbin and /sbin to PATH`,
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await preflight(Deno.env.toObject()));
