/**
 * Files the server writes in its run folder (VPN_RUN_DIR): a folder others can write is refused before
 * anything is written in it, and a symlink planted as the pid file is never followed, with real processes.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { HostProcess } from "./netns/process.ts";
import { VPN_PORT, vpnCmd, withVpnLab } from "./netns/vpn.ts";

/** Exit code of `p`, which must exit within 20 s (it is killed otherwise). */
async function exitCode(p: HostProcess): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    p.exited.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), 20_000)),
  ]);
  clearTimeout(timer);
  const status = await p.stop("SIGKILL", 0);
  assert(done, `did not exit within 20 s: ${p.output()}`);
  return status.code;
}

Deno.test("e2e: a <tun>.pid symlink in the run folder never makes the server write through it", async () => {
  await withVpnLab({ hosts: ["srv"] }, async (lab, net) => {
    const host = net.host("srv");
    const dir = `${lab.dir}/open-run`;
    await Deno.mkdir(dir);
    await Deno.chmod(dir, 0o1777);
    const victim = `${lab.dir}/victim`;
    await Deno.writeTextFile(victim, "precious\n");
    const tun = lab.tunName("vs");
    await Deno.symlink(victim, `${dir}/${tun}.pid`);
    const start = () =>
      host.spawn(vpnCmd("server", "--listen", `0.0.0.0:${VPN_PORT}`, "--tun", tun), {
        env: { VPN_RUN_DIR: dir, VPN_KEY: lab.key },
      });
    const tunGone = async () => (await host.run(["ip", "link", "show", "dev", tun])).code !== 0;

    // A world-writable (sticky) run folder: refused, nothing written in it.
    const open = start();
    assertEquals(await exitCode(open), 1, open.output());
    assertMatch(
      open.output(),
      new RegExp(`vpn: run folder ${dir}: mode 0777 lets group or others in; allowed: 0700`),
    );
    assertEquals(await Deno.readTextFile(victim), "precious\n");
    assert(await tunGone(), "the refused server left its TUN device behind");

    // A 0700 folder of ours with the symlink still planted as the pid file: refused, the target untouched.
    await Deno.chmod(dir, 0o700);
    const planted = start();
    assertEquals(await exitCode(planted), 1, planted.output());
    assertMatch(
      planted.output(),
      new RegExp(`vpn: pid file ${dir}/${tun}\\.pid: exists and is a symlink, not a regular file of uid 0`),
    );
    assertEquals(await Deno.readTextFile(victim), "precious\n");
    assert((await Deno.lstat(`${dir}/${tun}.pid`)).isSymlink, "the planted symlink was replaced");
    assert(await tunGone(), "the refused server left its TUN device behind");

    // Once removed, the server writes a fresh 0600 pid file, and a stale one of ours is replaced.
    await Deno.remove(`${dir}/${tun}.pid`);
    await Deno.writeTextFile(`${dir}/${tun}.pid`, '{"pid": 4242, "config": null}\n', { mode: 0o600 });
    const ok = start();
    try {
      await ok.waitForOutput(/server started/, 20_000);
      const info = await Deno.lstat(`${dir}/${tun}.pid`);
      assert(info.isFile && (info.mode! & 0o777) === 0o600, `pid file mode ${info.mode?.toString(8)}`);
      assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/${tun}.pid`)).pid !== 4242, true);
    } finally {
      await ok.stop("SIGTERM", 5000);
    }
    assertEquals(await Deno.readTextFile(victim), "precious\n");
  });
});

Deno.test("e2e: a client refuses a pre-existing TUN of another user and leaves it as it was", async () => {
  await withVpnLab({ hosts: ["srv", "cli"] }, async (lab, net) => {
    const srv = await lab.server("srv");
    const host = net.host("cli");
    const tun = lab.tunName("vc");
    await host.runOk(["ip", "tuntap", "add", "dev", tun, "mode", "tun", "user", "65534"]);
    try {
      const cli = await lab.client("cli", srv, { tun, wait: false });
      assertEquals(await exitCode(cli.proc), 1, cli.output());
      assertMatch(
        cli.output(),
        new RegExp(`vpn: cannot open TUN device "${tun}": .*EBUSY.*delete it \\(ip link delete ${tun}\\)`),
      );
      const owner = await host.runOk(["cat", `/sys/class/net/${tun}/owner`]);
      assertEquals(owner.trim(), "65534", "the foreign device was changed or removed");
      const addr = await host.runOk(["ip", "-o", "addr", "show", "dev", tun]);
      assert(!addr.includes("inet "), `the client configured the foreign device: ${addr}`);
    } finally {
      await host.run(["ip", "link", "delete", tun]);
    }
  });
});
