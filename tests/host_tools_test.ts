/**
 * The preflight of `deno task test` (tests/host_tools.ts), run as the task runs it, with a PATH of
 * symlinks that hides `ping`: it stops with the one command that installs it, or installs it through
 * apt-get (a fake one here, recording its arguments) and carries on.
 */
import { assertEquals } from "./assert.ts";
import { HOST_TOOLS, missingTools } from "./host_tools.ts";

const SCRIPT = new URL("./host_tools.ts", import.meta.url).pathname;

/** Absolute path of `tool` on this host's PATH. */
async function which(tool: string): Promise<string> {
  const out = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** A folder with a symlink to every host tool except `hidden`. */
async function pathWithout(hidden: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "vpn-host-tools-" });
  for (const { tool } of HOST_TOOLS) {
    // Files given by absolute path are not looked up on PATH.
    if (tool !== hidden && !tool.startsWith("/")) await Deno.symlink(await which(tool), `${dir}/${tool}`);
  }
  return dir;
}

async function preflight(path: string, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT],
    env: { ...env, PATH: path },
    stdin: "null",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("test preflight: passes when every tool is there, names a hidden one with its install command", async () => {
  const dir = await pathWithout("ping");
  try {
    assertEquals(missingTools(dir).map((t) => t.tool), ["ping"]);
    const none = await preflight(dir, { VPN_TEST_NO_INSTALL: "1" });
    assertEquals(none, {
      code: 1,
      stderr: "deno task test: missing ping (iputils-ping); install them with: " +
        "apt-get update && apt-get install -y iputils-ping\n",
    });
    // Without apt-get on PATH (not Debian) it stops at once with the same command.
    const noApt = await preflight(dir);
    assertEquals(noApt.code, 1);
    assertEquals(
      noApt.stderr.split("\n")[1],
      "deno task test: could not install ping (iputils-ping); install them with: " +
        "apt-get update && apt-get install -y iputils-ping",
    );
    await Deno.symlink(await which("ping"), `${dir}/ping`);
    assertEquals(await preflight(dir, { VPN_TEST_NO_INSTALL: "1" }), { code: 0, stderr: "" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("test preflight: installs what is missing with apt-get, then carries on", async () => {
  const dir = await pathWithout("ping");
  try {
    const ping = await which("ping");
    // A fake apt-get: records its arguments; "install" puts ping on the PATH.
    await Deno.writeTextFile(
      `${dir}/apt-get`,
      `#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> ${dir}/apt.log\n` +
        `[ "$1" = install ] && /bin/ln -s ${ping} ${dir}/ping\nexit 0\n`,
      { mode: 0o755 },
    );
    await Deno.chmod(`${dir}/apt-get`, 0o755);
    const r = await preflight(dir);
    assertEquals(r, {
      code: 0,
      stderr: "deno task test: installing iputils-ping (missing ping (iputils-ping))\n",
    });
    assertEquals(
      await Deno.readTextFile(`${dir}/apt.log`),
      [
        "noninteractive update -qq",
        "noninteractive install -y -qq iputils-ping",
        "",
      ].join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
