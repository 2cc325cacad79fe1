/**
 * The systemd units pass `systemd-analyze verify` (run in a private mount namespace where a stand-in
 * /usr/local/bin/vpn exists, so the host's /usr/local/bin is untouched) and use readiness notification
 * and systemd-made folders.
 */
import { assertEquals, assertMatch } from "./assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const VERIFY = `set -e
mount -t tmpfs tmpfs /usr/local/bin
printf '#!/bin/sh\\n' > /usr/local/bin/vpn
chmod 755 /usr/local/bin/vpn
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp packaging/vpn-server.service "$d/"
cp packaging/vpn-client@.service "$d/vpn-client@home.service"
systemd-analyze verify "$d/vpn-server.service" "$d/vpn-client@home.service"
`;

Deno.test("packaging: systemd-analyze verify is clean for both units", async () => {
  const out = await new Deno.Command("unshare", {
    args: ["-m", "--propagation", "private", "bash", "-c", VERIFY],
    cwd: ROOT,
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
  assertEquals(text.trim(), "", "systemd-analyze verify printed warnings");
});

Deno.test("packaging: units are Type=notify with RuntimeDirectory= and ConfigurationDirectory=", () => {
  for (const unit of ["vpn-server.service", "vpn-client@.service"]) {
    const text = Deno.readTextFileSync(`${ROOT}packaging/${unit}`);
    assertMatch(text, /^Type=notify$/m);
    assertMatch(text, /^RuntimeDirectory=vpn$/m);
    assertMatch(text, /^RuntimeDirectoryMode=0700$/m);
    assertMatch(text, /^ConfigurationDirectory=vpn$/m);
  }
});
