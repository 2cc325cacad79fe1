/**
 * What a local user can hold on the metrics endpoint of a real server process: 500 connections opened and
 * left silent keep the server's file descriptors bounded (MAX_CONNECTIONS), and a fresh scrape still answers.
 */
import { assert, assertMatch } from "./assert.ts";
import { python3Bin } from "./netns/capture.ts";
import { withVpnLab } from "./netns/vpn.ts";
import { MAX_CONNECTIONS } from "../src/ops/metrics.ts";

const HOLD = `
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) for _ in range(int(sys.argv[1]))]
print("open", len(socks), flush=True)
time.sleep(float(sys.argv[3]))
`;

function fdCount(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

Deno.test("e2e: 500 silent metrics connections: the server holds at most its limit, a scrape still answers", async () => {
  await withVpnLab({ hosts: ["srv"] }, async (lab, net) => {
    const host = net.host("srv");
    const srv = await lab.server("srv", { args: ["--metrics", "127.0.0.1:9181"] });
    const pid = JSON.parse(await Deno.readTextFile(`${lab.runDir}/${srv.tun}.pid`)).pid as number;
    const base = fdCount(pid);
    const holder = host.spawn([python3Bin(), "-c", HOLD, "500", "9181", "60"]);
    try {
      await holder.waitForOutput(/open 500/, 30_000);
      let most = 0;
      for (let i = 0; i < 20; i++) {
        most = Math.max(most, fdCount(pid));
        await new Promise((r) => setTimeout(r, 100));
      }
      assert(most <= base + MAX_CONNECTIONS + 8, `server held ${most} fds (${base} before the flood)`);
      const scrape = await host.run(["curl", "-s", "-m", "10", "http://127.0.0.1:9181/metrics"]);
      assertMatch(scrape.stdout, /^vpn_peers 0$/m, scrape.stderr);
      assert(fdCount(pid) <= base + MAX_CONNECTIONS + 8, "fds grew after the scrape");
    } finally {
      await holder.stop("SIGKILL", 0);
    }
  });
});
