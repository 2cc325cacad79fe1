/**
 * The commands that touch no device run under the narrow permissions the README gives them: no
 * --allow-ffi, environment access scoped to the variables they read, no write or net access where they
 * need none. Each run is a separate `deno run` of mod.ts, as a user would start it.
 */
import { assertEquals, assertMatch, assertNotMatch } from "./assert.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;
/** Only what Deno itself needs to find its cache; the rest of the environment is cleared. */
const DENO_ENV = Object.fromEntries(
  ["HOME", "DENO_DIR", "XDG_CACHE_HOME"].flatMap((k) =>
    Deno.env.get(k) !== undefined ? [[k, Deno.env.get(k)!]] : []
  ),
);

async function run(
  permissions: string[],
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, MOD, ...args],
    env: { ...DENO_ENV, NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const r = { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
  // No command here may ask for a permission it was not given (ffi, env, write, net, ...).
  assertNotMatch(r.err, /Requires .* access|NotCapable|--allow-/, `${args.join(" ")}: ${r.err}`);
  return r;
}

Deno.test("genkey, version and help need no permission at all", async () => {
  const key = await run([], ["genkey"]);
  assertEquals(key.code, 0);
  assertMatch(key.out, /^[A-Za-z0-9+/]{43}=\n$/);
  assertEquals((await run([], ["version"])).out.trim().split(".").length, 3);
  const help = await run([], ["help", "server"]);
  assertEquals(help.code, 0);
  assertMatch(help.out, /^Usage: vpn server/);
  assertEquals((await run([], ["client", "--help"])).code, 0);
});

Deno.test("genkey and help under --allow-read and a scoped --allow-env, without --allow-ffi", async () => {
  const perms = ["--allow-read", "--allow-env=VPN_KEY,VPN_RUN_DIR,VPN_DEBUG_STACK"];
  const r = await run(perms, ["genkey"], { VPN_KEY: "unused", VPN_DEBUG_STACK: "1" });
  assertEquals(r.code, 0);
  assertEquals((await run(perms, ["help"])).code, 0);
});

Deno.test("status without a running instance: read/write/net scoped to the control socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const perms = [
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      `--allow-net=unix:${dir}/pt0.sock`,
      "--allow-env=VPN_RUN_DIR",
    ];
    const r = await run(perms, ["status", "--tun", "pt0"], { VPN_RUN_DIR: dir });
    assertEquals(r.code, 1, r.err);
    assertEquals(r.err, `vpn status: no vpn is running on pt0 (nothing listens on ${dir}/pt0.sock)\n`);
    const json = await run(perms, ["status", "--json", "--tun", "pt0"], { VPN_RUN_DIR: dir });
    assertEquals(json.code, 1);
    assertEquals(json.out, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config errors are reported under --allow-read --allow-env=VPN_KEY --allow-sys=uid, before any FFI", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const perms = ["--allow-read", "--allow-env=VPN_KEY", "--allow-sys=uid"];
    const mtu = await run(perms, ["server", "--mtu", "99999", "--key-file", `${dir}/k`]);
    assertEquals(mtu.code, 2);
    assertMatch(mtu.err, /^vpn: --mtu: got "99999"; allowed: an integer from 576 to 9000\n$/);
    const file = `${dir}/bad.toml`;
    await Deno.writeTextFile(file, '[server]\ntun = "bad/name"\n');
    const cfg = await run(perms, ["server", "--config", file]);
    assertEquals(cfg.code, 2);
    assertMatch(cfg.err, /^vpn: .*tun: got "bad\/name"; allowed: an interface name/);
    const key = await run(perms, ["client", "--peer", "127.0.0.1:51820"], { VPN_KEY: "not base64!" });
    assertEquals(key.code, 2);
    assertMatch(key.err, /^vpn: VPN_KEY: /);
    const missing = await run(perms, ["client", "--peer", "127.0.0.1:51820", "--key-file", `${dir}/none`]);
    assertEquals(missing.code, 2);
    assertMatch(missing.err, /key file .*none: does not exist/);
    // A key file readable by others is refused after its owner and mode are checked (the uid needs sys).
    await Deno.writeTextFile(`${dir}/open.key`, `${"A".repeat(43)}=\n`, { mode: 0o644 });
    await Deno.chmod(`${dir}/open.key`, 0o644);
    const open = await run(perms, ["client", "--peer", "127.0.0.1:51820", "--key-file", `${dir}/open.key`]);
    assertEquals(open.code, 2);
    assertMatch(open.err, /open\.key.*0644/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vpn peer add/list/remove without a running server: read, and write to its folders only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/server.toml`;
    await Deno.writeTextFile(config, '[server]\naddress = "10.0.0.1/24"\n', { mode: 0o600 });
    const perms = ["--allow-read", `--allow-write=${dir}`, "--allow-env=VPN_RUN_DIR", "--allow-sys=uid"];
    const env = { VPN_RUN_DIR: dir };
    const add = await run(perms, [
      "peer",
      "add",
      "laptop",
      "--config",
      config,
      "--endpoint",
      "192.0.2.1:51820",
      "--out",
      `${dir}/laptop.toml`,
    ], env);
    assertEquals(add.code, 0, add.err);
    assertMatch(add.out, /^added peer laptop with address 10\.0\.0\.2/);
    const list = await run(perms, ["peer", "list", "--config", config, "--json"], env);
    assertEquals(list.code, 0, list.err);
    assertMatch(list.out, /"laptop"/);
    assertEquals((await run(perms, ["peer", "remove", "laptop", "--config", config], env)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
