/** Tests of the network-namespace test harness itself (tests/netns/). */
import assert from "node:assert/strict";
import {
  bytesContain,
  cleanupStale,
  createNetwork,
  denoBin,
  findTcpdump,
  listNamespaces,
  NetnsError,
} from "./netns/hosts.ts";

const OURS = `vt${Deno.pid}x`;

async function ourNamespaces(): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith(OURS));
}

function processGone(pid: number): boolean {
  try {
    // A zombie still has /proc/<pid>; it counts as gone.
    return /^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return true;
  }
}

Deno.test("hosts reach each other over IPv4 and IPv6, and extra addresses work", async () => {
  await using net = await createNetwork({ hosts: ["srv", "c1", "c2"], ipv6: true });
  const [srv, c1, c2] = ["srv", "c1", "c2"].map((n) => net.host(n));
  assert.equal(srv.address, "10.203.0.1");
  assert.equal(c2.address6, "fd0d:203::3");
  assert.equal(new Set(net.namespaces()).size, 4);
  assert.deepEqual((await ourNamespaces()).sort(), net.namespaces().sort());

  const pings = await Promise.all([
    c1.ping(srv.address),
    c2.ping(srv.address),
    c1.ping(c2.address),
    c1.ping(srv.address6!),
    srv.ping(c2.address6!),
  ]);
  assert.deepEqual(pings, [true, true, true, true, true]);
  // An address no host holds stays silent (the request never leaves the bridge).
  assert.equal(await c1.ping("10.203.0.99", { count: 1, timeoutS: 1 }), false);

  // Roaming support: a second underlay address becomes reachable, and unreachable once removed.
  await c1.addAddress("10.203.0.50/24");
  await srv.waitForPing("10.203.0.50", 5000);
  await c1.delAddress("10.203.0.50/24");
  assert.equal(await srv.ping("10.203.0.50", { count: 1, timeoutS: 1 }), false);

  const r = await c2.run(["ip", "-o", "addr", "show", "dev", "eth0"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /10\.203\.0\.3\/24/);
  assert.match(r.stdout, /fd0d:203::3\/64/);
  assert.match(r.stdout, /fe80::/);
  assert.doesNotMatch(r.stdout, /tentative/);
  const t = await c2.run(["sleep", "5"], { timeoutMs: 200 });
  assert.equal(t.timedOut, true);
  assert.notEqual(t.code, 0);
});

Deno.test("destroy kills spawned processes and removes every namespace, even after a throw", async () => {
  let pid = 0;
  let pidInside = 0;
  let names: string[] = [];
  await assert.rejects(async () => {
    await using net = await createNetwork({ hosts: ["a", "b"] });
    names = net.namespaces();
    const p = net.host("a").spawn([denoBin(), "eval", "console.log('up'); setInterval(() => {}, 1000)"]);
    pid = p.pid;
    await p.waitForOutput(/up/, 10_000);
    // A process started behind the harness's back is found through `ip netns pids`.
    const bg = await net.host("b").run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"]);
    pidInside = Number(bg.stdout.trim());
    assert.ok(pidInside > 0 && !processGone(pidInside));
    throw new Error("assertion failed in a test body");
  }, /assertion failed in a test body/);
  assert.ok(processGone(pid), `spawned pid ${pid} still alive`);
  for (let i = 0; i < 50 && !processGone(pidInside); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(processGone(pidInside), `background pid ${pidInside} still alive`);
  const left = await listNamespaces();
  for (const n of names) assert.ok(!left.includes(n), `namespace ${n} left behind`);
  assert.deepEqual(await ourNamespaces(), []);
});

Deno.test("stop escalates to SIGKILL and destroy is idempotent", async () => {
  const net = await createNetwork({ hosts: ["x"] });
  try {
    const p = net.host("x").spawn(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]);
    await p.waitForOutput(/ready/, 5000);
    const t0 = performance.now();
    const st = await p.stop("SIGTERM", 300);
    assert.equal(st.signal, "SIGKILL");
    assert.ok(performance.now() - t0 < 3000);
    await assert.rejects(p.waitForOutput(/never/, 1000), /exited/);
  } finally {
    await net.destroy();
    await net.destroy();
  }
  assert.throws(() => net.host("x").spawn(["true"]), NetnsError);
  assert.deepEqual(await ourNamespaces(), []);
});

Deno.test("tcpTransfer moves 1 MiB intact over IPv4 and IPv6", async () => {
  await using net = await createNetwork({ hosts: ["srv", "c1"], ipv6: true });
  const [srv, c1] = [net.host("srv"), net.host("c1")];
  const [v4, v6] = await Promise.all([
    c1.tcpTransfer(srv, srv.address, 1 << 20),
    srv.tcpTransfer(c1, c1.address6!, 1 << 20),
  ]);
  for (const r of [v4, v6]) {
    assert.equal(r.sentBytes, 1 << 20);
    assert.equal(r.receivedBytes, 1 << 20);
    assert.match(r.sentSha256, /^[0-9a-f]{64}$/);
    assert.equal(r.receivedSha256, r.sentSha256);
  }
  assert.notEqual(v4.sentSha256, v6.sentSha256);
});

for (const tool of ["tcpdump", "python"] as const) {
  Deno.test({
    name: `capture (${tool}) sees a UDP payload sent with udpBlast, and not one never sent`,
    ignore: tool === "tcpdump" && findTcpdump() === null,
    fn: async () => {
      await using net = await createNetwork({ hosts: ["srv", "c1"] });
      const [srv, c1] = [net.host("srv"), net.host("c1")];
      const marker = new TextEncoder().encode(`VT-MARKER-${crypto.randomUUID()}`);
      const absent = new TextEncoder().encode(`VT-ABSENT-${crypto.randomUUID()}`);
      const cap = await srv.capture("udp port 40000", 10_000, { tool });
      assert.equal(cap.tool, tool);
      const noise = Array.from({ length: 20 }, (_, i) => crypto.getRandomValues(new Uint8Array(1 + i * 50)));
      const res = await c1.udpBlast(srv.address, 40000, [...noise, marker], 5000);
      assert.deepEqual(res, { queued: 21, sent: 21 });
      // Delivery is asynchronous: give the capture a moment to see the last frame.
      for (let i = 0; i < 60 && !bytesContain(await cap.peek(), marker); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const bytes = await cap.stop();
      assert.ok(bytes.length > 0);
      assert.ok(bytesContain(bytes, marker), "marker payload not captured");
      assert.ok(!bytesContain(bytes, absent));
      assert.equal(cap.dropped, 0);
    },
  });
}

Deno.test("udpBlast stops at maxMs even with an endless source", async () => {
  await using net = await createNetwork({ hosts: ["a", "b"] });
  function* endless() {
    const d = new Uint8Array(64);
    for (;;) yield d;
  }
  const t0 = performance.now();
  const res = await net.host("a").udpBlast(net.host("b").address, 9, endless(), 500);
  assert.ok(performance.now() - t0 < 4000);
  assert.ok(res.queued > 0 && res.sent === res.queued, JSON.stringify(res));
});

Deno.test("cleanupStale removes only our prefix's namespaces whose pid is dead", async () => {
  // pid_max is at most 4194304, so this pid can never be alive.
  const dead = "vt4194305x1-old";
  const foreign = `zz${Deno.pid}x1-keep`;
  const mine = `vt${Deno.pid}x999-live`;
  const made = [dead, foreign, mine];
  try {
    for (const n of made) {
      const r = await new Deno.Command("ip", { args: ["netns", "add", n], stderr: "piped" }).output();
      assert.ok(r.success, new TextDecoder().decode(r.stderr));
    }
    const removed = await cleanupStale("vt");
    assert.ok(removed.includes(dead));
    assert.ok(!removed.includes(foreign) && !removed.includes(mine));
    const left = await listNamespaces();
    assert.ok(!left.includes(dead));
    assert.ok(left.includes(foreign) && left.includes(mine));
  } finally {
    for (const n of made) {
      await new Deno.Command("ip", { args: ["netns", "delete", n], stderr: "null" }).output();
    }
  }
});

Deno.test("createNetwork rejects bad host names", async () => {
  await assert.rejects(createNetwork({ hosts: ["Bad_Name"] }), NetnsError);
  await assert.rejects(createNetwork({ hosts: ["a", "a"] }), NetnsError);
  await assert.rejects(createNetwork({ hosts: [] }), NetnsError);
});
