/**
 * `deno task compile` end to end: build the single `vpn` binary into a temp folder and smoke-test it
 * (version, genkey, a server and a client in namespaces that ping each other, status over the socket).
 *
 * `deno compile` needs the `denort` runtime: it downloads one unless `DENORT_BIN` names a local copy (or
 * one is cached in DENO_DIR). Without network and without `DENORT_BIN` the build cannot run, and the test
 * is skipped with the reason in its name. `VPN_BIN=/path/to/vpn` smoke-tests an already built binary
 * instead of building one.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { createNetwork, denoBin } from "./netns/hosts.ts";
import { VERSION } from "../src/version.ts";
import type { StatusReport } from "../src/ops/status_report.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const COMPILE_TIMEOUT_MS = 90_000;

interface Built {
  bin: string;
  /** Folder to remove afterwards, when we built it. */
  dir?: string;
  /** Build time in ms. */
  buildMs?: number;
}

/** Builds the binary like `deno task compile`, into a temp folder; a string is why it cannot. */
async function build(): Promise<Built | string> {
  const given = Deno.env.get("VPN_BIN");
  if (given) return { bin: given };
  const dir = await Deno.makeTempDir({ prefix: "vpn-compile-" });
  const bin = `${dir}/vpn`;
  const started = performance.now();
  const child = new Deno.Command(denoBin(), {
    args: ["compile", "-A", "--unstable-net", "--output", bin, "mod.ts"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), COMPILE_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const log = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  if (out.success) return { bin, dir, buildMs: performance.now() - started };
  await Deno.remove(dir, { recursive: true });
  const offline = /dns error|error sending request|failed to lookup|connection refused|network|download/i;
  if (!Deno.env.get("DENORT_BIN") && (out.signal === "SIGKILL" || offline.test(log))) {
    return out.signal === "SIGKILL"
      ? `deno compile did not finish in ${COMPILE_TIMEOUT_MS / 1000} s (downloading denort?)`
      : "deno compile cannot download denort (offline) and DENORT_BIN is not set";
  }
  // Anything else is a real build failure: report it from the test.
  return `!${log.trim().split("\n").slice(0, 20).join("\n")}`;
}

const built = await build();
// Also when the test is filtered out: do not leave a 100 MB binary behind.
globalThis.addEventListener("unload", () => {
  if (typeof built !== "string" && built.dir) Deno.removeSync(built.dir, { recursive: true });
});
const skip = typeof built === "string" && !built.startsWith("!");
if (skip) console.log(`compile_test: skipped: ${built}`);

async function run(
  bin: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string; ms: number }> {
  const t = performance.now();
  const o = await new Deno.Command(bin, {
    args,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr), ms: performance.now() - t };
}

Deno.test({
  name: skip ? `compiled vpn binary (SKIPPED: ${built})` : "compiled vpn binary: version, genkey, tunnel",
  ignore: skip,
  async fn() {
    if (typeof built === "string") throw new Error(`deno compile failed:\n${built.slice(1)}`);
    const { bin } = built;
    const tmp = await Deno.makeTempDir({ prefix: "vpn-compiled-" });
    try {
      const version = await run(bin, ["version"]);
      assertEquals([version.code, version.out, version.err], [0, `${VERSION}\n`, ""]);
      const size = (await Deno.stat(bin)).size;
      console.log(
        `compiled vpn: ${(size / 2 ** 20).toFixed(1)} MiB, \`vpn version\` in ${version.ms.toFixed(0)} ms` +
          (built.buildMs ? `, built in ${(built.buildMs / 1000).toFixed(1)} s` : ""),
      );
      const genkey = await run(bin, ["genkey"]);
      assertEquals(genkey.code, 0);
      assertMatch(genkey.out, /^[A-Za-z0-9+/]{43}=\n$/);
      const usage = await run(bin, ["server", "--mtu", "1"]);
      assertEquals(usage.code, 2);

      await using net = await createNetwork({ hosts: ["srv", "cli"] });
      const srv = net.host("srv"), cli = net.host("cli");
      const env = { VPN_KEY: genkey.out.trim(), NO_COLOR: "1" };
      try {
        const server = srv.spawn([bin, "server", "--listen", `${srv.address}:51820`, "--tun", "cbsrv0"], {
          env: { ...env, VPN_RUN_DIR: `${tmp}/srv` },
        });
        await server.waitForOutput(/server started/, 15_000);
        const client = cli.spawn([bin, "client", "--peer", `${srv.address}:51820`, "--tun", "cbcli0"], {
          env: { ...env, VPN_RUN_DIR: `${tmp}/cli` },
        });
        await client.waitForOutput(/handshake complete/, 15_000);
        await cli.waitForPing("10.0.0.1", 10_000);
        const st = await run(bin, ["status", "--json", "--tun", "cbsrv0"], { VPN_RUN_DIR: `${tmp}/srv` });
        assertEquals(st.code, 0, st.err);
        const report = JSON.parse(st.out) as StatusReport;
        assertEquals(report.peers.map((p) => p.address), ["10.0.0.2"]);
        assert(report.peers[0].rx_packets > 0);
        for (const p of [client, server]) assertEquals((await p.stop("SIGTERM", 5000)).code, 0);
      } catch (e) {
        console.error(net.logs());
        throw e;
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
