/** The `vpn` command as a user runs it: a separate process, its stdout, stderr and exit code. */
import { assertEquals, assertMatch, assertNotMatch } from "./assert.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;

async function vpn(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

Deno.test("vpn genkey prints one key and nothing else", async () => {
  const r = await vpn(["genkey"]);
  assertEquals(r.code, 0);
  assertMatch(r.out, /^[A-Za-z0-9+/]{43}=\n$/);
  assertEquals(r.err, "");
});

Deno.test("vpn version, help and --help on every command", async () => {
  assertMatch((await vpn(["version"])).out, /^\d+\.\d+\.\d+\n$/);
  const help = await vpn(["help"]);
  assertEquals(help.code, 0);
  assertMatch(help.out, /vpn server/);
  for (const cmd of ["server", "client", "status", "genkey", "version", "help"]) {
    const r = await vpn([cmd, "--help"]);
    assertEquals(r.code, 0, cmd);
    assertMatch(r.out, new RegExp(`^Usage: vpn ${cmd}`), cmd);
  }
  assertMatch((await vpn(["help", "client"])).out, /--default-route/);
});

Deno.test("usage errors: one line on stderr, exit code 2, no stack trace", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["frobnicate"],
      /^vpn: unknown command "frobnicate"; commands: server, client, status, peer, genkey, version, help$/,
    ],
    [["server", "--bogus"], /^vpn: --bogus: unknown flag for 'vpn server'; see 'vpn server --help'$/],
    [["server", "--mtu", "100000"], /^vpn: --mtu: got "100000"; allowed: an integer from 576 to 9000$/],
    [["server", "--port", "0"], /^vpn: --port: got "0"; allowed: an integer from 1 to 65535$/],
    [["server", "--address", "10.0.0.1/40"], /^vpn: --address: got "10.0.0.1\/40"/],
    [["server", "--key", "nope"], /^vpn: --key: not a key/],
    [
      ["server", "--config", "/nonexistent.toml"],
      /^vpn: --config \/nonexistent.toml: cannot read it: no such file$/,
    ],
    [["client"], /^vpn: --peer: missing/],
    [["client", "--peer", "[::1]"], /^vpn: --peer: got "\[::1\]"; allowed: HOST:PORT/],
    [["client", "--peer", "h:1", "--route", "300.0.0.0/8"], /^vpn: --route: got "300.0.0.0\/8"/],
    [["client", "--peer", "h:1", "extra"], /^vpn: vpn client: unexpected argument "extra"/],
    [["status", "--tun", "x".repeat(20)], /^vpn: --tun: got/],
    [["peer"], /^vpn: vpn peer: missing subcommand; allowed: add, list, remove$/],
    [["peer", "add", "bad name!"], /^vpn: NAME: got "bad name!"; allowed: 1 to 64 characters/],
    [["peer", "list", "--config", "/nonexistent.toml"], /^vpn: --config \/nonexistent.toml: cannot read it/],
  ];
  for (const [args, re] of cases) {
    const r = await vpn(args);
    assertEquals(r.code, 2, args.join(" "));
    assertEquals(r.err.trimEnd().split("\n").length, 1, `one line for ${args.join(" ")}: ${r.err}`);
    assertMatch(r.err.trimEnd(), re);
    assertNotMatch(r.err, /\s+at /);
  }
  const env = await vpn(["server"], { VPN_KEY: "not-a-key" });
  assertEquals(env.code, 2);
  assertMatch(env.err, /^vpn: VPN_KEY: not a key/);
});

Deno.test("a server key file readable by others stops the server before it touches the host", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vpn-cli-test-" });
  try {
    const path = `${dir}/k.key`;
    await Deno.writeTextFile(path, (await vpn(["genkey"])).out, { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    const r = await vpn(["server", "--key-file", path, "--tun", "vpntest-never"]);
    assertEquals(r.code, 2);
    assertMatch(r.err, /^vpn: key file .*k\.key: mode 0644 lets group or others read it/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vpn peer add: the client config is 0600 from its creation and a symlink at --out is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/server.toml`;
    const before = '[server]\naddress = "10.0.0.1/24"\n';
    await Deno.writeTextFile(config, before, { mode: 0o600 });
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, "precious\n");
    await Deno.chmod(victim, 0o644);
    const add = (out: string) =>
      vpn(["peer", "add", "laptop", "--config", config, "--endpoint", "192.0.2.1:51820", "--out", out], {
        VPN_RUN_DIR: dir,
      });
    // A symlink at --out (to a file, or dangling): refused, its target neither written nor chmodded.
    await Deno.symlink(victim, `${dir}/link.toml`);
    await Deno.symlink(`${dir}/nowhere`, `${dir}/dangling.toml`);
    for (const out of [`${dir}/link.toml`, `${dir}/dangling.toml`]) {
      const r = await add(out);
      assertEquals(r.code, 2, r.err);
      assertEquals(
        r.err,
        `vpn: --out: got ${JSON.stringify(out)}; allowed: a path where nothing exists yet, not a symlink ` +
          `(remove it or choose another with --out)\n`,
      );
    }
    assertEquals(await Deno.readTextFile(victim), "precious\n");
    assertEquals((await Deno.stat(victim)).mode! & 0o777, 0o644);
    await assertRejectsNotFound(`${dir}/nowhere`);
    assertEquals(await Deno.readTextFile(config), before);
    // Even under umask 000 the config and the key are created 0600 (no chmod after the fact).
    const old = Deno.umask(0o000);
    let r;
    try {
      r = await add(`${dir}/laptop.toml`);
    } finally {
      Deno.umask(old);
    }
    assertEquals(r.code, 0, r.err);
    assertEquals((await Deno.lstat(`${dir}/laptop.toml`)).mode! & 0o777, 0o600);
    assertEquals((await Deno.lstat(`${dir}/peers/laptop.key`)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function assertRejectsNotFound(path: string): Promise<void> {
  try {
    await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  throw new Error(`${path} exists`);
}
