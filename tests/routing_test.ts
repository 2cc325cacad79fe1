// src/routing.ts (forwarding, NAT) and src/cleanup.ts (undo on stop), against the real kernel where it
// matters: each such case runs in a child `deno run` of this file under `ip netns exec`, in a namespace the
// test creates and always deletes.
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { TunDevice } from "../ffi/tun_device.ts";
import { addRoute, deleteRoute, setInterfaceAddress, setInterfaceUp } from "../ffi/interface.ts";
import { ip, route } from "./ffi_args.ts";
import {
  addMasquerade,
  findTool,
  type Masquerade,
  setIpv4Forwarding,
  setIpv6Forwarding,
} from "../src/host/routing.ts";
import { Cleanup, type CleanupFailure, installSignalCleanup } from "../src/host/cleanup.ts";
import { childCases, firstLine, nsExec, serveChildCase } from "./netns/child_case.ts";

const natTool = findTool("nft") ? "nft" : findTool("iptables") ? "iptables" : null;
const { withNetns, spawnCase, runInNetns } = childCases(import.meta.filename!, "vpnr");

/** Everything the daemon case changes, as seen from inside the namespace. */
async function hostState(ns: string) {
  return {
    forwarding: (await nsExec(ns, "cat", "/proc/sys/net/ipv4/conf/all/forwarding")).trim(),
    route: (await nsExec(ns, "ip", "route", "show", "10.209.0.0/24")).trim(),
    route6: (await nsExec(ns, "ip", "-6", "route", "show", "fd00:209::/64")).trim(),
    tun: (await nsExec(ns, "ls", "/sys/class/net")).split(/\s+/).includes("vt0"),
    nat: natTool === "nft"
      ? (await nsExec(ns, "nft", "list", "tables")).includes("vpn_")
      : natTool === "iptables"
      ? (await nsExec(ns, "iptables", "-t", "nat", "-S", "POSTROUTING")).includes("MASQUERADE")
      : false,
  };
}

/** Start the daemon case, check its changes are in place, make it stop with `stop`, and check all are undone. */
async function daemonLeavesNothing(stop: "SIGTERM" | "SIGINT" | "fatal", wantCode: number) {
  await withNetns(async (ns) => {
    const child = spawnCase(ns, stop === "fatal" ? "daemonFatal" : "daemon");
    try {
      strictEqual(await firstLine(child, 5000), "ready");
      const during = await hostState(ns);
      strictEqual(during.forwarding, "1");
      match(during.route, /^10\.209\.0\.0\/24 dev lo/);
      match(during.route6, /^fd00:209::\/64 dev lo/);
      strictEqual(during.tun, true);
      strictEqual(during.nat, natTool !== null);
      if (stop !== "fatal") child.kill(stop);
      const status = await child.status;
      strictEqual(status.code, wantCode, `exit code after ${stop}`);
      deepStrictEqual(await hostState(ns), {
        forwarding: "0",
        route: "",
        route6: "",
        tun: false,
        nat: false,
      });
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.stderr.cancel();
      await child.stdout.cancel().catch(() => {});
    }
  });
}

// ---- cases run in the child, inside the namespace ----

const CASES: Record<string, () => Promise<void> | void> = {
  forwarding() {
    const path = "/proc/sys/net/ipv4/conf/all/forwarding";
    strictEqual(Deno.readTextFileSync(path).trim(), "0", "a fresh namespace does not forward");
    strictEqual(setIpv4Forwarding(true), false, "previous value: off");
    strictEqual(Deno.readTextFileSync(path).trim(), "1");
    strictEqual(setIpv4Forwarding(true), true, "previous value: on");
    strictEqual(setIpv4Forwarding(false), true);
    strictEqual(Deno.readTextFileSync(path).trim(), "0", "restored");
    const path6 = "/proc/sys/net/ipv6/conf/all/forwarding";
    strictEqual(setIpv6Forwarding(true), false);
    strictEqual(Deno.readTextFileSync(path6).trim(), "1");
    strictEqual(setIpv6Forwarding(false), true);
    strictEqual(Deno.readTextFileSync(path6).trim(), "0");
  },

  async nat() {
    const list = () =>
      new TextDecoder().decode(new Deno.Command("nft", { args: ["list", "ruleset"] }).outputSync().stdout);
    const v4 = await addMasquerade("eth9", "10.0.0.0/24");
    const v6 = await addMasquerade("eth9", "fd00:1::/64");
    strictEqual(v4.tool, natTool);
    if (v4.tool === "nft") {
      const table = v4.rule.match(/nft table ip (vpn_\d+_\d+)/)![1];
      const rules = list();
      ok(rules.includes(`table ip ${table} {`), rules);
      ok(rules.includes('oifname "eth9" ip saddr 10.0.0.0/24 masquerade'), rules);
      ok(rules.includes('oifname "eth9" ip6 saddr fd00:1::/64 masquerade'), rules);
      await v4.remove();
      ok(!list().includes("ip saddr 10.0.0.0/24"), "v4 rule removed");
      ok(list().includes("ip6 saddr fd00:1::/64"), "v6 rule untouched by the v4 removal");
      await v6.remove();
      strictEqual(list().trim(), "", "nothing left");
      await v4.remove(); // idempotent
    } else {
      const save = () =>
        new TextDecoder().decode(
          new Deno.Command("iptables-save", { args: ["-t", "nat"] }).outputSync().stdout,
        );
      ok(save().includes("-A POSTROUTING -s 10.0.0.0/24 -o eth9"), save());
      await v4.remove();
      ok(!save().includes("MASQUERADE"), "removed");
      await v6.remove();
    }
    await rejects(addMasquerade('eth"0', "10.0.0.0/24"), /bad interface name "eth"0"/);
    await rejects(
      addMasquerade("eth0", "10.0.0.0/40"),
      /cannot masquerade: prefix length 40 is out of range/,
    );
  },

  async daemon() {
    await daemon();
  },

  async daemonFatal() {
    await daemon();
    // An uncaught error must still undo everything (and exit 1).
    setTimeout(() => {
      throw new Error("simulated fatal error");
    }, 300);
  },
};

/** A stand-in for the server: changes the host, registers undo steps, then runs a TUN read loop. */
async function daemon() {
  const cleanup = new Cleanup((f) => console.error(`cleanup ${f.description}: ${f.error}`));
  installSignalCleanup(cleanup);
  const previous = setIpv4Forwarding(true);
  cleanup.add("restore IPv4 forwarding", () => void setIpv4Forwarding(previous));
  const tun = TunDevice.open("vt0");
  cleanup.add("close TUN vt0", () => tun.close());
  setInterfaceAddress("vt0", ip("10.201.0.1"), 24);
  setInterfaceUp("vt0");
  setInterfaceUp("lo");
  addRoute(route("10.209.0.0/24"), "lo");
  cleanup.add("route 10.209.0.0/24", () => deleteRoute(route("10.209.0.0/24"), "lo"));
  addRoute(route("fd00:209::/64"), "lo");
  cleanup.add("route fd00:209::/64", () => deleteRoute(route("fd00:209::/64"), "lo"));
  let nat: Masquerade | null = null;
  if (natTool) nat = await addMasquerade("lo", "10.201.0.0/24");
  if (nat) cleanup.add(nat.rule, nat.remove);
  console.log("ready");
  const buf = new Uint8Array(2048);
  (async () => {
    while (await tun.waitReadable()) while (tun.read(buf) > 0) { /* discard */ }
  })();
}

// ---- tests (parent) ----

Deno.test("routing: IPv4/IPv6 forwarding set, previous value returned and restorable", () =>
  runInNetns("forwarding"));

Deno.test({
  name: `routing: masquerade added, visible, removed exactly (${
    natTool ?? "SKIPPED: neither nft nor iptables installed"
  })`,
  ignore: natTool === null,
  fn: () => runInNetns("nat"),
});

Deno.test("cleanup: SIGTERM undoes routes, NAT, forwarding and removes the TUN; exit 0", () =>
  daemonLeavesNothing("SIGTERM", 0));

Deno.test("cleanup: SIGINT does the same", () => daemonLeavesNothing("SIGINT", 0));

Deno.test("cleanup: an uncaught error undoes everything and exits 1", () => daemonLeavesNothing("fatal", 1));

Deno.test("cleanup: runs steps newest first, each once, collecting failures", async () => {
  const ran: string[] = [];
  const seen: CleanupFailure[] = [];
  const c = new Cleanup((f) => seen.push(f));
  c.add("a", () => void ran.push("a"));
  c.add("b", () => {
    ran.push("b");
    throw new Error("b failed");
  });
  c.add("c", async () => {
    await new Promise((r) => setTimeout(r, 5));
    ran.push("c");
  });
  strictEqual(c.size, 3);
  const [first, second] = await Promise.all([c.runAll(), c.runAll()]); // concurrent calls share one run
  deepStrictEqual(ran, ["c", "b", "a"]);
  strictEqual(first, second);
  strictEqual(first.length, 1);
  strictEqual(first[0].description, "b");
  strictEqual((first[0].error as Error).message, "b failed");
  deepStrictEqual(seen, first);
  deepStrictEqual(await c.runAll(), [], "nothing runs twice");
  deepStrictEqual(ran, ["c", "b", "a"]);
  c.add("d", () => void ran.push("d"));
  await c.runAll();
  deepStrictEqual(ran, ["c", "b", "a", "d"], "steps added later run on the next call");
});

await serveChildCase(CASES, (name) => name.startsWith("daemon"));
