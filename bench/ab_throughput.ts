/**
 * A/B check for a hot-path change: TCP throughput through our tunnel (info level, auto data path) for two
 * source trees, alternating which goes first each round and flushing the kernel's cached TCP metrics before
 * each run, in two namespaces made here (prefix "vab"). Prints each run and the medians. As root:
 *
 *   git archive main | tar -x -C /tmp/base
 *   deno run -A bench/ab_throughput.ts /tmp/base . [ROUNDS=4] [SECONDS=5]
 *
 * Much cheaper than `deno task bench` and without the reference tunnels; for a before/after on a busy host
 * where only the difference matters.
 */
import { createNetwork } from "../tests/netns/hosts.ts";

const [a, b, roundsArg, secondsArg] = Deno.args;
if (!a || !b) {
  console.error("usage: deno run -A bench/ab_throughput.ts TREE_A TREE_B [ROUNDS] [SECONDS]");
  Deno.exit(2);
}
const trees: [string, string][] = [["A", Deno.realPathSync(a)], ["B", Deno.realPathSync(b)]];
const rounds = Number(roundsArg ?? 4), seconds = Number(secondsArg ?? 5);
const results: Record<string, number[]> = { A: [], B: [] };
const key = "kOLM0yzVssSAT2Q+KcHxm4s7T7nURwNPejZs45o0j0I=";
const runDir = Deno.makeTempDirSync({ prefix: "vab-" });
try {
  await using net = await createNetwork({ hosts: ["abs", "abc"], prefix: "vab" });
  const s = net.host("abs"), c = net.host("abc");
  s.spawn(["iperf3", "-s", "-p", "5201"]);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? trees : [...trees].reverse();
    for (const [name, dir] of order) {
      for (const h of [s, c]) await h.runOk(["ip", "tcp_metrics", "flush", "all"]);
      const env = { VPN_KEY: key, VPN_RUN_DIR: runDir, NO_COLOR: "1" };
      const vpn = (...args: string[]) => [Deno.execPath(), "run", "-A", `${dir}/mod.ts`, ...args];
      const srv = s.spawn(
        vpn("server", "--listen", "0.0.0.0:51820", "--tun", "abs0", "--address", "10.77.0.1/24"),
        { env },
      );
      await srv.waitForOutput(/server started/, 20_000);
      const cli = c.spawn(vpn("client", "--peer", `${s.address}:51820`, "--tun", "abc0"), { env });
      await cli.waitForOutput(/handshake complete/, 20_000);
      await c.waitForPing("10.77.0.1", 10_000);
      const out = await c.runOk(
        ["iperf3", "-c", "10.77.0.1", "-p", "5201", "-t", String(seconds), "-J"],
        { timeoutMs: (seconds + 15) * 1000 },
      );
      const mbps = Math.round(JSON.parse(out).end.sum_received.bits_per_second / 1e6);
      results[name].push(mbps);
      console.log(`round ${r + 1} ${name} (${dir}): ${mbps} Mbit/s`);
      await cli.stop();
      await srv.stop();
    }
  }
} finally {
  Deno.removeSync(runDir, { recursive: true });
}
const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
console.log(
  `median A ${median(results.A)} Mbit/s, B ${median(results.B)} Mbit/s; runs ${JSON.stringify(results)}`,
);
