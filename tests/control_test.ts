/**
 * The control socket and its folder: the run folder is created 0700 and refused when it is wider, owned
 * by another user or a symlink; a live instance's socket is never taken (also across network namespaces,
 * with real processes), while a socket left by a killed instance is replaced.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { ControlError, serveControl } from "../src/ops/control.ts";
import type { StatusReport } from "../src/ops/status_report.ts";
import { denoBin } from "./netns/hosts.ts";
import { VPN_PORT, withVpnLab } from "./netns/vpn.ts";

const REPORT = { version: 1, role: "server" } as unknown as StatusReport;

async function withTmp(body: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "vpn-control-" });
  try {
    await body(tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function ask(path: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  return await new Response(conn.readable).text();
}

Deno.test("run folder: created 0700 (whatever the umask), socket 0600, removed on close", async () => {
  await withTmp(async (tmp) => {
    const dir = `${tmp}/a/run`;
    const old = Deno.umask(0o000);
    let c;
    try {
      c = await serveControl("ct0", () => REPORT, dir);
    } finally {
      Deno.umask(old);
    }
    assertEquals((await Deno.lstat(dir)).mode! & 0o777, 0o700);
    assertEquals((await Deno.lstat(c.path)).mode! & 0o777, 0o600);
    assertEquals(JSON.parse(await ask(c.path)), REPORT);
    c.close();
    await assertRejects(() => Deno.lstat(c.path), Deno.errors.NotFound);
  });
});

Deno.test("run folder: refused, untouched, when wider than 0700, owned by another user, or a symlink", async () => {
  await withTmp(async (tmp) => {
    const dir = `${tmp}/run`;
    await Deno.mkdir(dir);
    for (const mode of [0o755, 0o750, 0o701, 0o1777]) {
      await Deno.chmod(dir, mode);
      const e = await assertRejects(() => serveControl("ct0", () => REPORT, dir), ControlError);
      const shown = (mode & 0o777).toString(8).padStart(4, "0");
      assertEquals(
        e.message,
        `run folder ${dir}: mode ${shown} lets group or others in; allowed: 0700 (run: chmod 700 ${dir}) ` +
          `or set VPN_RUN_DIR to another folder`,
      );
      assertEquals((await Deno.lstat(dir)).mode! & 0o7777, mode);
      await assertRejects(() => Deno.lstat(`${dir}/ct0.sock`), Deno.errors.NotFound);
    }
    await Deno.chmod(dir, 0o700);
    await Deno.chown(dir, 65534, null);
    const owner = await assertRejects(() => serveControl("ct0", () => REPORT, dir), ControlError);
    assertEquals(
      owner.message,
      `run folder ${dir}: owned by uid 65534, not by root or the user running vpn (uid ${Deno.uid()}); ` +
        `remove it or set VPN_RUN_DIR to another folder`,
    );
    await Deno.chown(dir, Deno.uid(), null);
    await Deno.symlink(dir, `${tmp}/link`);
    const link = await assertRejects(() => serveControl("ct0", () => REPORT, `${tmp}/link`), ControlError);
    assertEquals(
      link.message,
      `run folder ${tmp}/link: not a folder (a symlink or file); remove it or set VPN_RUN_DIR to another folder`,
    );
    // Once fixed, it serves.
    (await serveControl("ct0", () => REPORT, dir)).close();
  });
});

Deno.test("control socket: a live instance's socket is never taken; a stale one is replaced", async () => {
  await withTmp(async (tmp) => {
    const dir = `${tmp}/run`;
    const first = await serveControl("ct0", () => REPORT, dir);
    try {
      const e = await assertRejects(
        () => serveControl("ct0", () => ({ role: "client" }) as unknown as StatusReport, dir),
        ControlError,
      );
      assertEquals(
        e.message,
        `control socket ${dir}/ct0.sock answers: another vpn runs with TUN name ct0 (in this or another ` +
          `network namespace); stop it, or use another --tun or VPN_RUN_DIR`,
      );
      assertEquals(JSON.parse(await ask(first.path)).role, "server"); // still the first one's
    } finally {
      first.close();
    }
    // A process that exits without closing leaves its socket file behind: nobody answers on it.
    const stale = `${dir}/ct1.sock`;
    const exited = await new Deno.Command(denoBin(), {
      args: ["eval", `Deno.listen({ transport: "unix", path: ${JSON.stringify(stale)} }); Deno.exit(0)`],
      stdin: "null",
    }).output();
    assert(exited.success && (await Deno.lstat(stale)).isSocket, "could not leave a stale socket behind");
    const second = await serveControl("ct1", () => REPORT, dir);
    assertEquals(JSON.parse(await ask(stale)), REPORT);
    second.close();
    // Anything else at the socket's path is left alone.
    await Deno.writeTextFile(`${dir}/ct2.sock`, "not a socket");
    const file = await assertRejects(() => serveControl("ct2", () => REPORT, dir), ControlError);
    assertEquals(file.message, `control socket ${dir}/ct2.sock: exists and is not a socket; remove it`);
  });
});

Deno.test("e2e: a client with the server's TUN name in another namespace does not take its socket", async () => {
  await withVpnLab({ hosts: ["srv", "cli"] }, async (lab, net) => {
    const srv = await lab.server("srv");
    const cli = await lab.client("cli", srv, {
      tun: srv.tun,
      wait: false,
      peer: `${net.host("srv").address}:${VPN_PORT}`,
    });
    const status = await cli.proc.exited;
    assertEquals(status.code, 1, cli.output());
    assert(
      cli.output().includes(
        `vpn: control socket ${lab.runDir}/${srv.tun}.sock answers: another vpn runs with TUN name ${srv.tun}`,
      ),
      cli.output(),
    );
    assert(!(await cli.tunExists()), "the refused client left its TUN device behind");
    assertEquals((await srv.status()).role, "server");
  });
});
