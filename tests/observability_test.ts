/**
 * Seeing inside a running tunnel, end to end in namespaces: per-packet trace lines for a 3-packet ping
 * on both sides (and none at debug), SIGHUP applying the log level and reporting a changed MTU as needing a
 * restart, JSON and journald log lines, the Prometheus endpoint (parsed by python3-prometheus-client's
 * parser, byte counters equal to `vpn status --json`, nothing but GET /metrics answered), `vpn status`
 * listing two instances, and systemd READY=1 / STOPPING=1 on a fake NOTIFY_SOCKET.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { createNetwork, denoBin, type Host, type HostProcess } from "./netns/hosts.ts";
import { generateKey, keyToBase64 } from "../src/config/key_file.ts";
import type { StatusReport } from "../src/ops/status_report.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MOD = `${ROOT}mod.ts`;
/** Debian's python3 (python3-prometheus-client installs there, not into other pythons on PATH). */
const PYTHON = "/usr/bin/python3";

function vpnCmd(...args: string[]): string[] {
  return [denoBin(), "run", "-A", MOD, ...args];
}

/** Lines printed after `from` characters of output. */
function linesSince(p: HostProcess, from: number): string[] {
  return p.output().slice(from).split("\n");
}

/** Pings `address` exactly three times from `host` (fails the test when an echo is lost). */
async function ping3(host: Host, address: string): Promise<void> {
  await host.runOk(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", address], { timeoutMs: 10_000 });
}

interface TraceLine {
  peer: string;
  src: string;
  dst: string;
  icmpType: number;
  counter: number;
}

/** The ICMP trace lines of one kind (`sealed` or `opened`) among `lines`. */
function icmpTrace(lines: string[], kind: "sealed" | "opened"): TraceLine[] {
  const re = new RegExp(
    `TRACE packet ${kind} dir=(?:in|out) peer=(\\S+) proto=icmp src=(\\S+) dst=(\\S+) icmp_type=(\\d+) len=84 counter=(\\d+)`,
  );
  return lines.flatMap((l) => {
    const m = re.exec(l);
    return m ? [{ peer: m[1], src: m[2], dst: m[3], icmpType: Number(m[4]), counter: Number(m[5]) }] : [];
  });
}

function assertIncreasing(t: TraceLine[]): void {
  for (let i = 1; i < t.length; i++) assert(t[i].counter > t[i - 1].counter, JSON.stringify(t));
}

Deno.test("trace: a 3-packet ping gives three seal and three open lines per side; none at debug; SIGHUP", async () => {
  await using net = await createNetwork({ hosts: ["srv", "cli"] });
  const dir = Deno.makeTempDirSync({ prefix: "vpn-trace-" });
  const env = { VPN_KEY: keyToBase64(generateKey()), VPN_RUN_DIR: dir, NO_COLOR: "1" };
  try {
    const srv = net.host("srv"), cli = net.host("cli");
    const config = `${dir}/server.toml`;
    const toml = (level: string, mtu: number) =>
      `[server]\naddress = "10.62.0.1/24"\nlisten = "0.0.0.0:51820"\ntun = "trsrv"\nlog_level = "${level}"\nmtu = ${mtu}\n`;
    Deno.writeTextFileSync(config, toml("trace", 1420));
    const server = srv.spawn(vpnCmd("server", "--config", config), { env, logPrefix: "server" });
    await server.waitForOutput(/server started/, 15_000);
    const client = cli.spawn(
      vpnCmd("client", "--peer", `${srv.address}:51820`, "--tun", "trcli", "--log-level", "trace"),
      { env, logPrefix: "client" },
    );
    await client.waitForOutput(/handshake complete/, 15_000);
    await cli.waitForPing("10.62.0.1", 10_000);

    const s0 = server.output().length, c0 = client.output().length;
    await ping3(cli, "10.62.0.1");
    // The last reply is traced on the client before ping prints it; give the server's log a moment too.
    await new Promise((r) => setTimeout(r, 300));
    const cl = linesSince(client, c0), sl = linesSince(server, s0);
    const cSealed = icmpTrace(cl, "sealed"), cOpened = icmpTrace(cl, "opened");
    const sSealed = icmpTrace(sl, "sealed"), sOpened = icmpTrace(sl, "opened");
    for (
      const [name, t, type, src, dst] of [
        ["client sealed", cSealed, 8, "10.62.0.2", "10.62.0.1"],
        ["client opened", cOpened, 0, "10.62.0.1", "10.62.0.2"],
        ["server opened", sOpened, 8, "10.62.0.2", "10.62.0.1"],
        ["server sealed", sSealed, 0, "10.62.0.1", "10.62.0.2"],
      ] as const
    ) {
      assertEquals(t.length, 3, `${name}: ${JSON.stringify(t)}`);
      for (const l of t) {
        assertEquals([l.icmpType, l.src, l.dst], [type, src, dst], name);
      }
      assertIncreasing(t);
    }
    assert(cSealed.every((l) => l.peer === "server") && sOpened.every((l) => l.peer === "10.62.0.2"));
    // What one side sealed is what the other opened, counter for counter.
    assertEquals(sOpened.map((l) => l.counter), cSealed.map((l) => l.counter));
    assertEquals(cOpened.map((l) => l.counter), sSealed.map((l) => l.counter));

    // A datagram from outside that is no protocol message: one trace line with the reason.
    await cli.runOk(["bash", "-c", `printf 'x' > /dev/udp/${srv.address}/51820`]);
    await server.waitForOutput(
      new RegExp(`TRACE datagram dropped reason=\\S+ from=${cli.address.replaceAll(".", "\\.")}:\\d+`),
      5000,
    );

    // SIGHUP: the log level applies at once, the MTU needs a restart (and keeps running at 1420).
    Deno.writeTextFileSync(config, toml("debug", 1400));
    const s1 = server.output().length;
    server.kill("SIGHUP");
    await server.waitForOutput(/changed setting mtu not applied; a restart applies it/, 10_000);
    const hup = linesSince(server, s1).join("\n");
    assertMatch(hup, /applied changed setting setting=log_level value=debug/);
    assertMatch(
      hup,
      /WARN {2}changed setting mtu not applied; a restart applies it setting=mtu running=1420 wanted=1400/,
    );
    assertEquals(/setting=(listen|tun|address|key|crypto|udp)\b/.test(hup), false, hup);
    const s2 = server.output().length;
    await ping3(cli, "10.62.0.1");
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(linesSince(server, s2).filter((l) => /packet (sealed|opened)/.test(l)), []);
    assertEquals(icmpTrace(linesSince(client, c0), "sealed").length, 6);
    for (const p of [client, server]) assertEquals((await p.stop()).code, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Exposition samples as parsed by python3-prometheus-client: [name, labels, value]. */
type Sample = [string, Record<string, string>, number];

const PARSE_PY = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
`;

/** GET `url` from inside `host`; status code and body. */
async function httpGet(host: Host, url: string, method = "GET"): Promise<{ code: string; body: string }> {
  const r = await host.runOk(["curl", "-s", "-X", method, "-o", "-", "-w", "\n%{http_code}", url]);
  const at = r.lastIndexOf("\n");
  return { code: r.slice(at + 1), body: r.slice(0, at) };
}

/** Parse exposition text with python3-prometheus-client's parser (it throws on malformed text). */
async function parseExposition(text: string): Promise<Sample[]> {
  const child = new Deno.Command(PYTHON, {
    args: ["-c", PARSE_PY],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)) as Sample[];
}

/** The next datagram on `conn` as text, or "timeout". */
async function receiveWithin(conn: Deno.DatagramConn, ms: number): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((r) => timer = setTimeout(() => r("timeout"), ms));
  try {
    return await Promise.race([conn.receive().then(([data]) => new TextDecoder().decode(data)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sample(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hit = samples.find(([n, l]) => n === name && Object.entries(labels).every(([k, v]) => l[k] === v));
  return hit?.[2];
}

Deno.test("metrics, JSON and journald logs, vpn status of two instances, systemd notify", async () => {
  await using net = await createNetwork({ hosts: ["srv", "cli"] });
  const dir = Deno.makeTempDirSync({ prefix: "vpn-metrics-" });
  const notifyPath = `${dir}/notify.sock`;
  const notify = Deno.listenDatagram({ transport: "unixpacket", path: notifyPath });
  const env = { VPN_KEY: keyToBase64(generateKey()), VPN_RUN_DIR: dir, NO_COLOR: "1" };
  try {
    const srv = net.host("srv"), cli = net.host("cli");
    const server = srv.spawn(
      vpnCmd(
        "server",
        "--listen",
        "0.0.0.0:51820",
        "--tun",
        "mtsrv",
        "--address",
        "10.63.0.1/24",
        "--metrics",
        "9180",
        "--log-format",
        "json",
      ),
      { env: { ...env, NOTIFY_SOCKET: notifyPath }, logPrefix: "server" },
    );
    assertEquals(await receiveWithin(notify, 20_000), "READY=1");
    // READY comes after the start line: the TUN is up and the sockets listen.
    await server.waitForOutput(/"msg":"server started"/, 1000);
    // As systemd does: JOURNAL_STREAM names the device and inode of the stream that is stderr.
    const client = cli.spawn(
      [
        "bash",
        "-c",
        'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"',
        "vpn",
        ...vpnCmd("client", "--peer", `${srv.address}:51820`, "--tun", "mtcli"),
      ],
      { env, logPrefix: "client" },
    );
    await client.waitForOutput(/handshake complete/, 15_000);
    await cli.waitForPing("10.63.0.1", 10_000);
    await ping3(cli, "10.63.0.1");

    // JSON lines: every stderr line of the server is one object with time, level, msg and the fields.
    const jsonLines = server.stderr().trim().split("\n").map((l) => JSON.parse(l));
    for (const o of jsonLines) {
      assert(!Number.isNaN(Date.parse(o.time)) && typeof o.level === "string" && typeof o.msg === "string");
    }
    const started = jsonLines.find((o) => o.msg === "server started");
    assertEquals([started.tun, started.address, started.mtu], ["mtsrv", "10.63.0.1/24", 1420]);
    assert(jsonLines.some((o) => o.msg === "serving metrics" && o.url === "http://127.0.0.1:9180/metrics"));
    // Journald: priority first, no timestamp.
    const clientLines = client.stderr().trim().split("\n");
    for (const l of clientLines) assertMatch(l, /^<[3467]>(INFO |WARN |ERROR|DEBUG) /);
    assert(clientLines.some((l) => l.startsWith("<6>INFO  handshake complete ")));

    // `vpn status` without --tun lists both instances (they share the run folder).
    const st = await new Deno.Command(denoBin(), {
      args: ["run", "-A", MOD, "status", "--json"],
      env: { VPN_RUN_DIR: dir, NO_COLOR: "1" },
    }).output();
    assertEquals(st.code, 0, new TextDecoder().decode(st.stderr));
    const reports = JSON.parse(new TextDecoder().decode(st.stdout)) as StatusReport[];
    assertEquals(reports.map((r) => [r.role, r.interface]), [["client", "mtcli"], ["server", "mtsrv"]]);
    const text = await new Deno.Command(denoBin(), {
      args: ["run", "-A", MOD, "status"],
      env: { VPN_RUN_DIR: dir, NO_COLOR: "1" },
    }).output();
    const shown = new TextDecoder().decode(text.stdout);
    assertMatch(shown, /^client on mtcli 10\.63\.0\.2\/24[^]*\n\nserver on mtsrv 10\.63\.0\.1\/24 listening/);

    // The scrape: parses, and its per-peer byte counters are those of `vpn status --json`.
    await new Promise((r) => setTimeout(r, 1100)); // past the render cache of an earlier scrape, if any
    const scrape = await httpGet(srv, "http://127.0.0.1:9180/metrics");
    assertEquals(scrape.code, "200");
    const serverStatus = reports[1];
    const samples = await parseExposition(scrape.body);
    const peer = serverStatus.peers[0];
    const fresh = (await new Deno.Command(denoBin(), {
      args: ["run", "-A", MOD, "status", "--json", "--tun", "mtsrv"],
      env: { VPN_RUN_DIR: dir, NO_COLOR: "1" },
    }).output()).stdout;
    const now = (JSON.parse(new TextDecoder().decode(fresh)) as StatusReport).peers[0];
    assertEquals(peer.name, "10.63.0.2");
    assertEquals(sample(samples, "vpn_peer_received_bytes_total", { peer: peer.name }), now.rx_bytes);
    assertEquals(sample(samples, "vpn_peer_sent_bytes_total", { peer: peer.name }), now.tx_bytes);
    assert(now.rx_bytes >= 84 * 3 && now.tx_bytes >= 84 * 3);
    assert((sample(samples, "vpn_peer_received_packets_total", { peer: peer.name }) ?? 0) >= 3);
    assertEquals(sample(samples, "vpn_handshakes_completed_total"), 1);
    assertEquals(sample(samples, "vpn_peer_dropped_packets_total", { peer: peer.name, reason: "auth" }), 0);
    assertEquals(sample(samples, "vpn_dropped_packets_total", { reason: "malformed" }), 0);
    assert((sample(samples, "vpn_peer_last_handshake_age_seconds", { peer: peer.name }) ?? -1) >= 0);
    assertEquals(sample(samples, "vpn_data_path_info", { role: "server" }), 1);
    assert((sample(samples, "vpn_process_resident_memory_bytes") ?? 0) > 10_000_000);
    // promtool (Debian package prometheus, not installed by .ci/run since it starts a server) lints more.
    const promtool = await new Deno.Command("sh", { args: ["-c", "command -v promtool"] }).output();
    if (promtool.code === 0) {
      const child = new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(scrape.body));
      await w.close();
      const r = await child.output();
      assertEquals(r.code, 0, new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr));
    }
    // Conventions the parser does not enforce: counters end in _total, every family has HELP and TYPE.
    for (const m of scrape.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      assertEquals(m[1].startsWith("vpn_"), true);
      assertEquals(m[1].endsWith("_total"), m[2] === "counter", m[0]);
      assert(scrape.body.includes(`# HELP ${m[1]} `), m[1]);
    }

    // A garbage datagram from outside is counted: the scrape after the render cache shows it.
    await cli.runOk(["bash", "-c", `printf 'x' > /dev/udp/${srv.address}/51820`]);
    await new Promise((r) => setTimeout(r, 1100));
    const after = await httpGet(srv, "http://127.0.0.1:9180/metrics");
    assertMatch(after.body, /^vpn_dropped_packets_total\{reason="malformed"\} 1$/m);

    // Only GET /metrics answers; it listens on 127.0.0.1 only (not reachable from the other host).
    assertEquals((await httpGet(srv, "http://127.0.0.1:9180/")).code, "404");
    assertEquals((await httpGet(srv, "http://127.0.0.1:9180/metrics/x")).code, "404");
    assertEquals((await httpGet(srv, "http://127.0.0.1:9180/metrics", "POST")).code, "404");
    const remote = await cli.run(["curl", "-s", "-m", "2", `http://${srv.address}:9180/metrics`]);
    assert(remote.code !== 0, "metrics reachable from another host");

    for (const p of [client, server]) assertEquals((await p.stop()).code, 0);
    assertEquals(await receiveWithin(notify, 5000), "STOPPING=1");
  } finally {
    notify.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
