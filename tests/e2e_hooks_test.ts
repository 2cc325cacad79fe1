/** post_up / pre_down hooks on server and client: environment, SIGTERM, and a failing post_up undoing everything. */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { vpnCmd, withVpnLab } from "./netns/vpn.ts";

function exists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, () => false);
}

/**
 * A hook that writes the VPN_* environment to `file` (a shell only because the test asks for one); written
 * beside it and renamed, so a reader never sees half of it.
 */
function dumpEnv(file: string): string {
  return `["sh", "-c", "env | grep ^VPN_ | sort > \\"$0.tmp\\" && mv \\"$0.tmp\\" \\"$0\\"", "${file}"]`;
}

/** The hook's output once it exists: the client's post_up may still be running when its tunnel answers. */
async function readWhenWritten(path: string, timeoutMs = 5_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  while (!(await exists(path))) {
    if (Date.now() > end) throw new Error(`${path} not written within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return await Deno.readTextFile(path);
}

Deno.test("e2e: post_up sees the tunnel's environment and pre_down runs on SIGTERM, server and client", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab) => {
    const d = lab.dir;
    const server = await lab.server("srv", {
      config: `[server]\npost_up = [${dumpEnv(`${d}/srv-up`)}]\npre_down = [["touch", "${d}/srv-down"]]\n`,
    });
    const up = await readWhenWritten(`${d}/srv-up`);
    assertMatch(up, /^VPN_ADDRESS=10\.0\.0\.1\/24$/m);
    assertMatch(up, /^VPN_ROLE=server$/m);
    assertMatch(up, new RegExp(`^VPN_TUN=${server.tun}$`, "m"));
    // The server runs with VPN_KEY in its environment; hooks do not get it.
    assert(!up.includes("VPN_KEY"), up);
    assertMatch(server.output(), /post_up ran command="sh -c/);
    const cfg = `${d}/client.toml`;
    await Deno.writeTextFile(
      cfg,
      `[client]\npost_up = [${dumpEnv(`${d}/c-up`)}]\npre_down = [["touch", "${d}/c-down"]]\n`,
    );
    const client = await lab.client("c1", server, { args: ["--config", cfg] });
    await lab.net.host("c1").waitForPing("10.0.0.1", 10_000);
    const cup = await readWhenWritten(`${d}/c-up`);
    assertMatch(cup, /VPN_ADDRESS=10\.0\.0\.2\/24\n/);
    assertMatch(cup, /VPN_ROLE=client\n/);
    assert(!cup.includes("VPN_KEY"), cup);
    assertMatch(cup, new RegExp(`VPN_SERVER=${server.host.address.replaceAll(".", "\\.")}:51820\n`));
    assert(!(await exists(`${d}/c-down`)) && !(await exists(`${d}/srv-down`)));
    assertEquals((await client.stop()).code, 0);
    assert(await exists(`${d}/c-down`), "client pre_down did not run on SIGTERM");
    assertEquals((await server.stop()).code, 0);
    assert(await exists(`${d}/srv-down`), "server pre_down did not run on SIGTERM");
  });
});

Deno.test("e2e: a failing post_up stops the start and leaves nothing behind", async () => {
  await withVpnLab({ hosts: ["srv", "c1"] }, async (lab, net) => {
    const d = lab.dir;
    const srv = net.host("srv");
    const tun = lab.tunName("vs");
    const cfg = `${d}/server.toml`;
    // The first hook leaves a mark that pre_down removes; the second fails.
    await Deno.writeTextFile(
      cfg,
      `[server]\ntun = "${tun}"\nlisten = "0.0.0.0:51820"\nforward = true\n` +
        `post_up = [["touch", "${d}/mark"], ["false"]]\npre_down = [["rm", "-f", "${d}/mark"]]\n`,
    );
    const fwdBefore = (await srv.runOk(["cat", "/proc/sys/net/ipv4/conf/all/forwarding"])).trim();
    const r = await srv.run(vpnCmd("server", "--config", cfg), {
      env: { VPN_RUN_DIR: lab.runDir, VPN_KEY: lab.key },
    });
    assertEquals(r.code, 1, r.stderr);
    assertMatch(r.stderr, /vpn: post_up "false" failed \(exit 1\)/);
    assertEquals((await srv.run(["ip", "link", "show", "dev", tun])).code, 1, "TUN left behind");
    assertEquals((await srv.runOk(["cat", "/proc/sys/net/ipv4/conf/all/forwarding"])).trim(), fwdBefore);
    assert(!(await exists(`${d}/mark`)), "pre_down did not run after the failed post_up");
    assertEquals([...Deno.readDirSync(lab.runDir)].map((e) => e.name), [], "run folder not empty");

    // The client: its post_up runs after the first handshake; a failure stops it with exit code 1.
    const server = await lab.server("srv", { listen: "0.0.0.0:51821", args: ["--port", "51821"] });
    const ccfg = `${d}/client.toml`;
    await Deno.writeTextFile(ccfg, `[client]\npost_up = [["false"]]\nroutes = ["198.18.0.0/24"]\n`);
    const client = await lab.client("c1", server, {
      peer: `${srv.address}:51821`,
      args: ["--config", ccfg],
      wait: false,
    });
    const status = await client.proc.exited;
    assertEquals(status.code, 1, client.output());
    assertMatch(client.output(), /fatal error error="post_up \\"false\\" failed \(exit 1\)"/);
    assertEquals(await client.tunExists(), false);
    assert(!(await net.host("c1").runOk(["ip", "-4", "route"])).includes("198.18.0.0"), "route left behind");
  });
});
