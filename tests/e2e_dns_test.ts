/**
 * Pushed DNS written into /etc/resolv.conf survives what a client's life can do to it: a SIGKILL followed by
 * a reboot (the run folder wiped; the backup is in the persistent state folder), a lost backup (the file
 * carries its original), someone else rewriting the file, systemd-resolved present but not in use, and a
 * read-only /etc. Each client runs in a mount namespace of its own with a temp file over /etc/resolv.conf.
 */
import { assert, assertEquals, assertMatch, assertNotMatch } from "./assert.ts";
import { ownEtcFile, vpnCmd, type VpnLab, type VpnNode, withVpnLab } from "./netns/vpn.ts";

const ORIGINAL = "# the client's own\nnameserver 192.0.2.53\nsearch home.example\n";
const PUSHED = /^nameserver 10\.0\.0\.1\nsearch corp\.example\n/m;
const SERVER_CONFIG = '[server]\ndns = ["10.0.0.1"]\ndns_search = ["corp.example"]\n';

async function gone(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true;
    throw e;
  }
}

/** What a reboot does to the client's folders: the run folder (tmpfs /run) is empty again. */
async function reboot(lab: VpnLab): Promise<void> {
  await Deno.remove(lab.runDir, { recursive: true });
  await Deno.mkdir(lab.runDir, { mode: 0o700 });
}

function errorLines(node: VpnNode): string[] {
  return node.output().split("\n").filter((l) => /\bERROR\b|"level":"error"/.test(l));
}

Deno.test("e2e dns: after SIGKILL and a reboot the next start, or --unblock, restores the original", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const c1 = net.host("c1");
    const file = `${lab.dir}/resolv.conf`;
    await Deno.writeTextFile(file, ORIGINAL);
    const backup = `${lab.stateDir}/resolv.conf.backup`;
    const server = await lab.server("srv", { config: SERVER_CONFIG });
    const wrap = ownEtcFile(file, "/etc/resolv.conf");
    const start = (tun?: string) => lab.client("c1", server, { wrap, tun });
    const unblock = (tun: string) =>
      c1.run([...wrap, ...vpnCmd("client", "--unblock", "--tun", tun)], {
        env: { VPN_RUN_DIR: lab.runDir, VPN_STATE_DIR: lab.stateDir },
      });

    let client = await start();
    await client.proc.waitForOutput(/DNS applied via=\/etc\/resolv\.conf/, 10_000);
    assertMatch(await Deno.readTextFile(file), PUSHED);
    assertEquals((await Deno.stat(backup)).mode! & 0o777, 0o600);
    await client.proc.stop("SIGKILL", 0);
    await reboot(lab);

    // The next start puts the original back before saving it again; its clean stop leaves the original.
    client = await start(client.tun);
    await client.proc.waitForOutput(/restored resolv\.conf left behind by a stopped client/, 10_000);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    assertMatch(await Deno.readTextFile(file), PUSHED);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);
    assert(await gone(backup), "the backup outlived a clean stop");

    // Killed and rebooted again: --unblock restores it.
    client = await start(client.tun);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    await client.proc.stop("SIGKILL", 0);
    await reboot(lab);
    let r = await unblock(client.tun);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr + r.stdout, /unblocked.*resolv\.conf/);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);
    assert(await gone(backup), "the backup outlived --unblock");

    // Killed, then someone else (DHCP, say) rewrites the file: the restore keeps theirs and drops the backup.
    client = await start(client.tun);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    await client.proc.stop("SIGKILL", 0);
    const theirs = "nameserver 198.51.100.7\n";
    await Deno.writeTextFile(file, theirs);
    r = await unblock(client.tun);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr + r.stdout, /rewritten by someone else after vpn; keeping it/);
    assertEquals(await Deno.readTextFile(file), theirs);
    assert(await gone(backup), "the backup outlived --unblock");
  });
});

Deno.test("e2e dns: a resolv.conf of ours without its backup is never taken for the original", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab) => {
    const file = `${lab.dir}/resolv.conf`;
    await Deno.writeTextFile(file, ORIGINAL);
    const backup = `${lab.stateDir}/resolv.conf.backup`;
    const server = await lab.server("srv", { config: SERVER_CONFIG });
    const wrap = ownEtcFile(file, "/etc/resolv.conf");

    // Killed, and the backup is lost too: the copy inside our file brings the original back.
    let client = await lab.client("c1", server, { wrap });
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    await client.proc.stop("SIGKILL", 0);
    await Deno.remove(backup);
    client = await lab.client("c1", server, { wrap, tun: client.tun });
    await client.proc.waitForOutput(/restored resolv\.conf from the copy inside it/, 10_000);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    assertEquals(JSON.parse(await Deno.readTextFile(backup)).original, ORIGINAL);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);

    // A file of ours as an older version wrote it (no copy inside, backup gone): not kept as the original.
    const old = "# written by vpn client (vc9) while it runs; the original comes back when it stops\n" +
      "nameserver 10.9.9.9\n";
    await Deno.writeTextFile(file, old);
    client = await lab.client("c1", server, { wrap, tun: client.tun });
    await client.proc.waitForOutput(/written by a vpn client that is gone and its original is lost/, 10_000);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    assertEquals((await client.stop()).code, 0);
    const after = await Deno.readTextFile(file);
    assertNotMatch(after, /^nameserver/m, "a resolver of a vpn client was kept as the original");
    assertMatch(after, /the original \/etc\/resolv\.conf was lost/);

    // The same with a backup an older version left in the run folder (no reboot since): that one comes back.
    await Deno.writeTextFile(file, old);
    const legacy = `${lab.runDir}/resolv.conf.backup`;
    await Deno.writeTextFile(legacy, JSON.stringify({ pid: 4_000_000, tun: "vc9", original: ORIGINAL }));
    client = await lab.client("c1", server, { wrap, tun: client.tun });
    await client.proc.waitForOutput(/restored resolv\.conf from a backup in the run folder/, 10_000);
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);
    assert(await gone(legacy), "the old backup stayed");
  });
});

Deno.test("e2e dns: with resolvectl but resolv.conf not at the resolved stub, the file is written", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab) => {
    const file = `${lab.dir}/resolv.conf`;
    const calls = `${lab.dir}/resolvectl.calls`;
    const bin = `${lab.dir}/bin`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/resolvectl`, `#!/bin/sh\necho "$@" >> ${calls}\n`, { mode: 0o755 });
    await Deno.writeTextFile(calls, "");
    const server = await lab.server("srv", { config: SERVER_CONFIG });
    // Its own /etc/resolv.conf, a resolved socket in a /run/systemd of its own, the fake resolvectl first.
    const wrap = [
      "unshare",
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0" /etc/resolv.conf && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/resolve && ' +
      `touch /run/systemd/resolve/io.systemd.Resolve && PATH=${bin}:$PATH exec "$@"`,
      file,
    ];

    await Deno.writeTextFile(file, ORIGINAL);
    let client = await lab.client("c1", server, { wrap });
    await client.proc.waitForOutput(/DNS applied via=\/etc\/resolv\.conf/, 10_000);
    assertMatch(client.output(), /systemd-resolved runs but resolv\.conf does not point at it/);
    assertMatch(await Deno.readTextFile(file), PUSHED);
    assertEquals(await Deno.readTextFile(calls), "", "resolvectl was used");
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);

    // At the stub: resolvectl on the TUN link, the file untouched, reverted on stop.
    const stub = "nameserver 127.0.0.53\noptions edns0\n";
    await Deno.writeTextFile(file, stub);
    client = await lab.client("c1", server, { wrap, tun: client.tun });
    await client.proc.waitForOutput(/DNS applied via=resolvectl/, 10_000);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), stub);
    const used = await Deno.readTextFile(calls);
    assertMatch(used, new RegExp(`^dns ${client.tun} 10\\.0\\.0\\.1$`, "m"));
    assertMatch(used, new RegExp(`^revert ${client.tun}$`, "m"));
  });
});

Deno.test("e2e dns: a read-only resolv.conf is one clear error, the client runs on, later starts are not blocked", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const c1 = net.host("c1");
    const file = `${lab.dir}/resolv.conf`;
    await Deno.writeTextFile(file, ORIGINAL);
    const backup = `${lab.stateDir}/resolv.conf.backup`;
    const server = await lab.server("srv", { config: SERVER_CONFIG });
    const readOnly = [
      "unshare",
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0" /etc/resolv.conf && mount -o remount,ro,bind /etc/resolv.conf && exec "$@"',
      file,
    ];
    const oneClearLine = async (client: VpnNode, what: RegExp) => {
      await client.proc.waitForOutput(what, 10_000);
      await c1.waitForPing(server.overlay, 10_000); // running on, without the pushed DNS
      const errors = errorLines(client);
      assertEquals(errors.length, 1, errors.join("\n"));
      assertMatch(errors[0], /Read-only file system.*ReadWritePaths=\/etc\/resolv\.conf/);
    };

    let client = await lab.client("c1", server, { wrap: readOnly });
    await oneClearLine(client, /cannot apply the pushed DNS settings: cannot write \/etc\/resolv\.conf/);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);
    assert(await gone(backup), "a backup was left for a file never changed");

    // A killed client's backup, and /etc read-only now: the start says so once and runs, twice.
    client = await lab.client("c1", server, { wrap: ownEtcFile(file, "/etc/resolv.conf"), tun: client.tun });
    await client.proc.waitForOutput(/DNS applied/, 10_000);
    await client.proc.stop("SIGKILL", 0);
    for (let i = 0; i < 2; i++) {
      client = await lab.client("c1", server, { wrap: readOnly, tun: client.tun });
      await oneClearLine(client, /cannot restore the original \/etc\/resolv\.conf/);
      assertEquals((await client.stop()).code, 0);
      assertMatch(await Deno.readTextFile(file), PUSHED);
    }
    // Writable again: the original comes back.
    client = await lab.client("c1", server, { wrap: ownEtcFile(file, "/etc/resolv.conf"), tun: client.tun });
    await client.proc.waitForOutput(/restored resolv\.conf left behind/, 10_000);
    assertEquals((await client.stop()).code, 0);
    assertEquals(await Deno.readTextFile(file), ORIGINAL);
    assert(await gone(backup));
  });
});

Deno.test("e2e dns: a state folder that is a symlink is refused in one line; resolv.conf is left alone", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const file = `${lab.dir}/resolv.conf`;
    await Deno.writeTextFile(file, ORIGINAL);
    const elsewhere = `${lab.dir}/elsewhere`;
    await Deno.mkdir(elsewhere, { mode: 0o700 });
    await Deno.symlink(elsewhere, lab.stateDir);
    const server = await lab.server("srv", { config: SERVER_CONFIG });
    const client = await lab.client("c1", server, { wrap: ownEtcFile(file, "/etc/resolv.conf") });
    await client.proc.waitForOutput(
      /cannot apply the pushed DNS settings: state folder .*not a folder/,
      10_000,
    );
    await net.host("c1").waitForPing(server.overlay, 10_000);
    assertEquals(errorLines(client).length, 1, errorLines(client).join("\n"));
    assertEquals(await Deno.readTextFile(file), ORIGINAL);
    assertEquals([...Deno.readDirSync(elsewhere)], [], "something was written through the symlink");
    assertEquals((await client.stop()).code, 0);
  });
});
