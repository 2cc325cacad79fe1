/**
 * In-process checks of the observability pieces: log formats (text, JSON, journald), the warning rate
 * limit, the trace packet formatter, the SIGHUP settings diff, the metrics exposition and endpoint, the
 * `--log-format` / `--metrics` settings, and systemd notification to a fake NOTIFY_SOCKET.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  debugEnabled,
  flushSuppressedWarnings,
  log,
  setLogLevel,
  setLogOutput,
  stderrIsJournal,
  traceEnabled,
  WARN_REPEAT_MS,
} from "../src/ops/log.ts";
import { describePacket } from "../src/ops/packet_trace.ts";
import { clientSettingsNeedingRestart, settingsNeedingRestart } from "../src/config/settings_diff.ts";
import { ConfigError, loadClientOptions, loadServerOptions } from "../src/config/config.ts";
import { MAX_CONNECTIONS, renderMetrics, serveMetrics } from "../src/ops/metrics.ts";
import { HandshakeStats } from "../src/ops/handshake_stats.ts";
import type { StatusReport } from "../src/ops/status_report.ts";
import { sendUnixDatagram } from "../ffi/notify_socket.ts";

/** Runs `fn` with log lines captured, text format, info level, a fixed clock; restores stderr after. */
function captured(
  fn: (lines: string[], clock: { now: number }) => void,
  o: { format?: "text" | "json"; journal?: boolean } = {},
): void {
  const lines: string[] = [];
  const clock = { now: Date.parse("2026-01-02T03:04:05.000Z") };
  setLogOutput({
    format: o.format ?? "text",
    journal: o.journal ?? false,
    sink: (l) => lines.push(l),
    clock: () => clock.now,
  });
  setLogLevel("info");
  try {
    fn(lines, clock);
  } finally {
    const enc = new TextEncoder();
    setLogOutput({
      format: "text",
      journal: false,
      sink: (l) => Deno.stderr.writeSync(enc.encode(l + "\n")),
      clock: Date.now,
    });
    setLogLevel("info");
  }
}

Deno.test("log: JSON lines are one object each with time, level, msg and the fields", () => {
  captured((lines) => {
    log.info("peer up", { peer: "alice", port: 51820, up: true, id: 5n, gone: undefined, time: "x" });
    log.debug("hidden");
    assertEquals(lines.length, 1);
    assertEquals(JSON.parse(lines[0]), {
      time: "2026-01-02T03:04:05.000Z",
      level: "info",
      msg: "peer up",
      peer: "alice",
      port: 51820,
      up: true,
      id: "5",
      field_time: "x",
    });
  }, { format: "json" });
});

Deno.test("log: under journald text lines start with the syslog priority and carry no timestamp", () => {
  captured((lines) => {
    setLogLevel("trace");
    log.error("e");
    log.warn("w");
    log.info("i", { a: "b c" });
    log.debug("d");
    log.trace("t");
    assertEquals(lines, ["<3>ERROR e", "<4>WARN  w", '<6>INFO  i a="b c"', "<7>DEBUG d", "<7>TRACE t"]);
  }, { journal: true });
  captured((lines) => {
    log.warn("w", { a: 1 });
    assertEquals(lines, ['<4>{"time":"2026-01-02T03:04:05.000Z","level":"warn","msg":"w","a":1}']);
  }, { journal: true, format: "json" });
  captured((lines) => {
    log.info("plain");
    assertEquals(lines, ["2026-01-02T03:04:05.000Z INFO  plain"]);
  });
});

Deno.test("log: JOURNAL_STREAM counts only when it names this process's stderr", () => {
  const st = Deno.statSync("/proc/self/fd/2");
  assertEquals(stderrIsJournal(`${st.dev}:${st.ino}`), true);
  assertEquals(stderrIsJournal(`${st.dev}:${st.ino! + 1}`), false);
  assertEquals(stderrIsJournal(undefined), false);
});

Deno.test("log: levels set the trace and debug flags the packet loops check", () => {
  captured(() => {
    setLogLevel("trace");
    assertEquals([traceEnabled, debugEnabled], [true, true]);
    setLogLevel("debug");
    assertEquals([traceEnabled, debugEnabled], [false, true]);
    setLogLevel("info");
    assertEquals([traceEnabled, debugEnabled], [false, false]);
  });
});

Deno.test("log: a repeating warning prints once per window, then with the count held back", () => {
  captured((lines, clock) => {
    for (let i = 0; i < 1000; i++) {
      log.warn("no free address for a new client", { from: `192.0.2.${i % 250}:1` });
    }
    log.warn("another warning");
    assertEquals(lines.length, 2);
    clock.now += WARN_REPEAT_MS;
    log.warn("no free address for a new client", { from: "192.0.2.1:1" });
    assertEquals(lines.length, 3);
    assertMatch(lines[2], / from=192\.0\.2\.1:1 suppressed=999$/);
    log.info("info is never held back");
    log.info("info is never held back");
    assertEquals(lines.length, 5);
    // A burst that stops is accounted for when its window ends, in a line of its own.
    log.warn("no free address for a new client", { from: "192.0.2.2:1" });
    log.warn("no free address for a new client", { from: "192.0.2.3:1" });
    flushSuppressedWarnings();
    assertEquals(lines.length, 5);
    clock.now += WARN_REPEAT_MS;
    flushSuppressedWarnings();
    assertEquals(lines.slice(5), [
      "2026-01-02T03:04:25.000Z WARN  no free address for a new client suppressed=2",
    ]);
    flushSuppressedWarnings();
    assertEquals(lines.length, 6);
  });
});

function ipv4(proto: number, payload: number[]): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p.set([0x45, 0, 0, p.length, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
  p.set(payload, 20);
  return p;
}

Deno.test("trace: packets are described with protocol, addresses and ports", () => {
  const udp = ipv4(17, [0x14, 0xe9, 0x00, 0x35, 0, 8, 0, 0]);
  assertEquals(describePacket(udp, udp.length), { proto: "udp", src: "10.0.0.2:5353", dst: "10.0.0.1:53" });
  const tcp = ipv4(6, [0xc0, 0x00, 0x01, 0xbb]);
  assertEquals(describePacket(tcp, tcp.length), { proto: "tcp", src: "10.0.0.2:49152", dst: "10.0.0.1:443" });
  const icmp = ipv4(1, [8, 0, 0, 0]);
  assertEquals(describePacket(icmp, icmp.length), {
    proto: "icmp",
    src: "10.0.0.2",
    dst: "10.0.0.1",
    icmp_type: 8,
  });
  const frag = ipv4(17, [1, 2, 3, 4]);
  frag[7] = 10; // not the first fragment: no ports
  assertEquals(describePacket(frag, frag.length), { proto: "udp", src: "10.0.0.2", dst: "10.0.0.1" });
  const v6 = new Uint8Array(48);
  v6[0] = 0x60;
  v6[6] = 17;
  v6.set([0xfd, 0], 8);
  v6[23] = 2;
  v6.set([0xfd, 0], 24);
  v6[39] = 1;
  v6.set([0, 80, 0x1f, 0x90], 40);
  assertEquals(describePacket(v6, v6.length), { proto: "udp", src: "[fd00::2]:80", dst: "[fd00::1]:8080" });
  assertEquals(describePacket(udp, 0), { proto: "keepalive" });
  assertEquals(describePacket(new Uint8Array([1, 0, 0]), 3), { proto: "control", type: 1 });
  // Truncated or foreign packets are described without reading past `len`.
  assertEquals(describePacket(udp, 10), { proto: "unknown", version: 4 });
  assertEquals(describePacket(udp, 22), { proto: "udp", src: "10.0.0.2", dst: "10.0.0.1" });
});

Deno.test("SIGHUP diff: changed settings are listed by config name; keys never shown", () => {
  withToml('[server]\nmtu = 1420\nkey = "kOLM0yzVssSAT2Q+KcHxm4s7T7nURwNPejZs45o0j0I="\n', (a) => {
    withToml(
      '[server]\nmtu = 1400\nkey = "+Bz8pHlEJSjYpiTBYkjuGC7fuEB1harWcH7z9DUMl3I="\nmetrics = "9100"\n',
      (b) => {
        const running = loadServerOptions({ config: a }, {});
        const next = loadServerOptions({ config: b }, {});
        const changes = settingsNeedingRestart(running, next);
        assertEquals(changes.map((c) => c.setting), ["mtu", "metrics", "key"]);
        assertEquals(changes[0], { setting: "mtu", running: "1420", wanted: "1400" });
        assertEquals(changes[1].wanted, "127.0.0.1:9100");
        assert(!JSON.stringify(changes).includes("kOLM") && !JSON.stringify(changes).includes("+Bz8"));
        assertEquals(settingsNeedingRestart(running, loadServerOptions({ config: a }, {})), []);
      },
    );
  });
});

Deno.test("SIGHUP diff: a client reports its own changed settings", () => {
  const base = { peer: "192.0.2.1:51820", key: "kOLM0yzVssSAT2Q+KcHxm4s7T7nURwNPejZs45o0j0I=" };
  const running = loadClientOptions(base, {});
  const next = loadClientOptions(
    { ...base, route: ["192.168.5.0/24"], "log-level": "debug", keepalive: "5" },
    {},
  );
  assertEquals(clientSettingsNeedingRestart(running, next), [
    { setting: "routes", running: "none", wanted: "192.168.5.0/24" },
    { setting: "keepalive", running: "server's", wanted: "5" },
  ]);
});

function withToml(text: string, fn: (path: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "vpn-obs-" });
  try {
    Deno.writeTextFileSync(`${dir}/vpn.toml`, text);
    Deno.chmodSync(`${dir}/vpn.toml`, 0o600); // it may hold a key inline
    fn(`${dir}/vpn.toml`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("settings: --log-format and --metrics (loopback unless a host is given)", () => {
  const peer = { peer: "192.0.2.1:51820" };
  assertEquals(loadServerOptions({}, {}).logFormat, "text");
  assertEquals(loadServerOptions({}, {}).metrics, undefined);
  assertEquals(loadServerOptions({ "log-format": "json" }, {}).logFormat, "json");
  assertEquals(loadServerOptions({ metrics: "9100" }, {}).metrics, { hostname: "127.0.0.1", port: 9100 });
  assertEquals(loadServerOptions({ metrics: ":9100" }, {}).metrics, { hostname: "127.0.0.1", port: 9100 });
  assertEquals(loadServerOptions({ metrics: "[::]:9100" }, {}).metrics, { hostname: "::", port: 9100 });
  assertEquals(loadClientOptions({ ...peer, metrics: "10.1.2.3:9100" }, {}).metrics, {
    hostname: "10.1.2.3",
    port: 9100,
  });
  withToml('[client]\npeer = "192.0.2.1:51820"\nlog_format = "json"\nmetrics = "9101"\n', (path) => {
    const o = loadClientOptions({ config: path }, {});
    assertEquals([o.logFormat, o.metrics?.port], ["json", 9101]);
  });
  const bad = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      assert(e instanceof ConfigError);
      return e.message;
    }
    throw new Error("no error");
  };
  assertEquals(
    bad(() => loadServerOptions({ "log-format": "xml" }, {})),
    '--log-format: got "xml"; allowed: text, json',
  );
  assertMatch(
    bad(() => loadServerOptions({ metrics: "99999" }, {})),
    /^--metrics: got "99999"; allowed: HOST:PORT or PORT/,
  );
  assertMatch(
    bad(() => loadServerOptions({ "log-level": "verbose" }, {})),
    /allowed: trace, debug, info, warn, error/,
  );
});

function report(): StatusReport {
  const drops = {
    auth: 1,
    replay: 2,
    no_route: 3,
    oversize: 4,
    malformed: 5,
    relay: 6,
    busy: 7,
    wrong_source: 8,
    source: 9,
  };
  return {
    version: 1,
    role: "server",
    interface: "vpn0",
    address: "10.0.0.1/24",
    listen: "0.0.0.0:51820",
    uptime_s: 3,
    crypto: "openssl",
    udp: "batched",
    drops,
    errors: { tun_write: 0, send_dropped: 0, send_refused: 0, truncated: 0 },
    peers: [
      {
        name: 'we"ird\\name',
        address: "10.0.0.2",
        endpoint: "192.0.2.1:1",
        last_handshake_s: 1.5,
        rx_bytes: 100,
        tx_bytes: 200,
        rx_packets: 1,
        tx_packets: 2,
        drops,
      },
      {
        name: "idle",
        address: "10.0.0.3",
        endpoint: null,
        last_handshake_s: null,
        rx_bytes: 0,
        tx_bytes: 0,
        rx_packets: 0,
        tx_packets: 0,
        drops,
      },
    ],
  };
}

Deno.test("metrics: exposition names, labels and escaping", () => {
  const hs = new HandshakeStats();
  hs.completed = 7;
  hs.refuse("auth");
  hs.refuse("auth");
  hs.refuse("busy");
  const text = renderMetrics({ report: report(), handshakes: hs, residentBytes: 12345 });
  assertMatch(text, /^vpn_peer_received_bytes_total\{peer="we\\"ird\\\\name",address="10\.0\.0\.2"\} 100$/m);
  assertMatch(text, /^vpn_peer_sent_packets_total\{peer="idle",address="10\.0\.0\.3"\} 0$/m);
  assertMatch(
    text,
    /^vpn_peer_last_handshake_age_seconds\{peer="we\\"ird\\\\name",address="10\.0\.0\.2"\} 1\.5$/m,
  );
  assertEquals(/vpn_peer_last_handshake_age_seconds\{peer="idle"/.test(text), false);
  assertMatch(text, /^vpn_dropped_packets_total\{reason="oversize"\} 4$/m);
  assertMatch(text, /^vpn_handshakes_completed_total 7$/m);
  assertMatch(text, /^vpn_handshakes_refused_total\{reason="auth"\} 2$/m);
  assertMatch(text, /^vpn_handshakes_refused_total\{reason="busy"\} 1$/m);
  assertMatch(text, /^vpn_data_path_info\{role="server",crypto="openssl",udp="batched"\} 1$/m);
  assertMatch(text, /^vpn_process_resident_memory_bytes 12345$/m);
  assert(text.endsWith("\n"));
});

Deno.test("metrics: only GET /metrics answers, and rendering is capped whatever the request rate", async () => {
  let renders = 0;
  const server = await serveMetrics({ hostname: "127.0.0.1", port: 0 }, () => {
    renders++;
    return { report: report(), handshakes: new HandshakeStats(), residentBytes: 1 };
  });
  try {
    const base = `http://${server.address}`;
    for (
      const [method, path] of [["GET", "/"], ["GET", "/metricsx"], ["POST", "/metrics"], ["PUT", "/metrics"]]
    ) {
      const r = await fetch(base + path, {
        method,
        body: method === "GET" ? undefined : "x".repeat(100_000),
      });
      assertEquals([method, path, r.status, await r.text()], [method, path, 404, ""]);
    }
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`${base}/metrics?x=${i}`);
      assertEquals(r.status, 200);
      assertEquals(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      await r.text();
    }
    assertEquals(renders, 1);
    // A port in use is a one-line error naming the setting.
    const port = Number(server.address.split(":").pop());
    let err: unknown;
    try {
      await serveMetrics({ hostname: "127.0.0.1", port }, () => {
        throw new Error("never rendered");
      });
    } catch (e) {
      err = e;
    }
    assertMatch(
      String(err),
      /^MetricsError: --metrics 127\.0\.0\.1:\d+: cannot listen: Address already in use/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("metrics: a silent or oversized request is closed; at the limit the oldest silent one makes room", async () => {
  const server = await serveMetrics(
    { hostname: "127.0.0.1", port: 0 },
    () => ({ report: report(), handshakes: new HandshakeStats(), residentBytes: 1 }),
    200,
  );
  const [hostname, port] = [server.address.split(":")[0], Number(server.address.split(":").pop())];
  const closedBy = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(4096);
    const deadline = Date.now() + 5000; // 25x the idle timeout
    while (Date.now() < deadline) {
      try {
        if (await conn.read(buf) === null) return true;
      } catch {
        return true; // reset
      }
    }
    return false;
  };
  try {
    const silent = await Deno.connect({ hostname, port });
    assertEquals(await closedBy(silent), true);
    silent.close();
    const big = await Deno.connect({ hostname, port });
    await big.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nx: " + "a".repeat(9000)));
    assertEquals(await closedBy(big), true);
    big.close();
    // MAX_CONNECTIONS + 1 silent connections: the first is closed for the last, and a scrape still answers.
    const held = [];
    for (let i = 0; i <= MAX_CONNECTIONS; i++) held.push(await Deno.connect({ hostname, port }));
    const r = await fetch(`http://${server.address}/metrics`);
    assertEquals(r.status, 200);
    assertMatch(await r.text(), /^vpn_peers /m);
    for (const c of held) c.close();
  } finally {
    await server.close();
  }
});

Deno.test("systemd notify: one datagram to a path or an abstract socket", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vpn-notify-" });
  const listener = Deno.listenDatagram({ transport: "unixpacket", path: `${dir}/notify` });
  try {
    sendUnixDatagram(`${dir}/notify`, "READY=1");
    const [data] = await listener.receive();
    assertEquals(new TextDecoder().decode(data), "READY=1");
    let err: unknown;
    try {
      sendUnixDatagram(`${dir}/nobody-listens`, "READY=1");
    } catch (e) {
      err = e;
    }
    assertMatch(String(err), /sendto failed: ENOENT/);
    try {
      sendUnixDatagram("/" + "x".repeat(200), "READY=1");
    } catch (e) {
      err = e;
    }
    assertMatch(String(err), /RangeError: socket path of 201 bytes/);
    // An abstract socket (`@name`, as systemd uses in containers), bound by Python.
    const name = `vpn-notify-test-${Deno.pid}`;
    const py = new Deno.Command("/usr/bin/python3", {
      args: [
        "-c",
        `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind("\\0${name}")\n` +
        `print("bound",flush=True)\ns.settimeout(5)\nprint(s.recv(64).decode(),flush=True)`,
      ],
      stdout: "piped",
    }).spawn();
    const reader = py.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("bound\n")) seen += (await reader.read()).value ?? "";
    sendUnixDatagram(`@${name}`, "STOPPING=1");
    for (let r = await reader.read(); !r.done; r = await reader.read()) seen += r.value;
    assertEquals(seen, "bound\nSTOPPING=1\n");
    assertEquals((await py.status).code, 0);
  } finally {
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
