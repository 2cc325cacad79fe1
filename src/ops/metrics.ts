/**
 * Prometheus metrics (`--metrics HOST:PORT`): text exposition format 0.0.4 on `GET /metrics`, served by
 * Deno's HTTP server on the event loop, never on the packet path. Everything comes from the same snapshot
 * `vpn status` shows, so the two agree. What an unauthenticated scraper can make it do is bounded: only
 * `GET /metrics` answers (anything else is a 404 without a body), the text is rendered at most once per
 * RENDER_EVERY_MS whatever the request rate, and connections are limited in number, time and size.
 */
import type { HostPort } from "../net/host_port.ts";
import { log } from "./log.ts";
import type { HandshakeStats } from "./handshake_stats.ts";
import type { DropCounts, StatusReport } from "./status_report.ts";

/** A scrape within this many ms of the last render gets the same text. */
const RENDER_EVERY_MS = 1000;

/** What one exposition is made of. */
export interface MetricsSource {
  readonly report: StatusReport;
  readonly handshakes: HandshakeStats;
  /** Resident set size of the process, bytes. */
  readonly residentBytes: number;
}

function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A peer's labels: its name, and its overlay address, which keeps two series apart should names collide. */
function peerLabels(p: StatusReport["peers"][number]): string {
  return `peer="${label(p.name)}",address="${label(p.address ?? "")}"`;
}

/** Renders the exposition text: HELP and TYPE once per family, samples after. */
export function renderMetrics(s: MetricsSource): string {
  const out: string[] = [];
  const family = (name: string, type: "counter" | "gauge", help: string, samples: string[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples);
  };
  const r = s.report;
  const perPeer = (name: string, pick: (p: StatusReport["peers"][number]) => number | null) =>
    r.peers.flatMap((p) => {
      const v = pick(p);
      return v === null ? [] : [`${name}{${peerLabels(p)}} ${v}`];
    });
  family(
    "vpn_peer_received_bytes_total",
    "counter",
    "Inner (decrypted) bytes received from the peer.",
    perPeer("vpn_peer_received_bytes_total", (p) => p.rx_bytes),
  );
  family(
    "vpn_peer_sent_bytes_total",
    "counter",
    "Inner bytes sent to the peer.",
    perPeer("vpn_peer_sent_bytes_total", (p) => p.tx_bytes),
  );
  family(
    "vpn_peer_received_packets_total",
    "counter",
    "Data packets received from the peer, keepalives included.",
    perPeer("vpn_peer_received_packets_total", (p) => p.rx_packets),
  );
  family(
    "vpn_peer_sent_packets_total",
    "counter",
    "Data packets sent to the peer, keepalives included.",
    perPeer("vpn_peer_sent_packets_total", (p) => p.tx_packets),
  );
  family(
    "vpn_peer_dropped_packets_total",
    "counter",
    "Packets dropped and charged to the peer, by reason.",
    r.peers.flatMap((p) =>
      dropSamples(p.drops).map(([reason, v]) =>
        `vpn_peer_dropped_packets_total{${peerLabels(p)},reason="${reason}"} ${v}`
      )
    ),
  );
  family(
    "vpn_peer_last_handshake_age_seconds",
    "gauge",
    "Seconds since the peer's last completed handshake (absent before the first).",
    perPeer("vpn_peer_last_handshake_age_seconds", (p) => p.last_handshake_s),
  );
  family(
    "vpn_dropped_packets_total",
    "counter",
    "Packets dropped and not charged to any peer, by reason.",
    dropSamples(r.drops).map(([reason, v]) => `vpn_dropped_packets_total{reason="${reason}"} ${v}`),
  );
  family("vpn_handshakes_completed_total", "counter", "Handshakes that produced a session.", [
    `vpn_handshakes_completed_total ${s.handshakes.completed}`,
  ]);
  family(
    "vpn_handshakes_refused_total",
    "counter",
    "Handshake messages refused, by reason.",
    [...s.handshakes.refused].sort().map(([reason, v]) =>
      `vpn_handshakes_refused_total{reason="${label(reason)}"} ${v}`
    ),
  );
  family("vpn_peers", "gauge", "Peers known (connected or pinned).", [`vpn_peers ${r.peers.length}`]);
  family("vpn_data_path_info", "gauge", "The data path in use (always 1).", [
    `vpn_data_path_info{role="${r.role}",crypto="${label(r.crypto)}",udp="${label(r.udp)}"} 1`,
  ]);
  family("vpn_process_resident_memory_bytes", "gauge", "Resident memory of the process.", [
    `vpn_process_resident_memory_bytes ${s.residentBytes}`,
  ]);
  return out.join("\n") + "\n";
}

function dropSamples(d: DropCounts): [string, number][] {
  return (Object.keys(d) as (keyof DropCounts)[]).sort().map((k) => [k, d[k]]);
}

/** The metrics endpoint could not start (names the setting and the address). */
export class MetricsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MetricsError";
  }
}

/** A running metrics endpoint; `close()` stops it. */
export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

/** Connections held at once; one more is closed on arrival (a scraper needs one). */
export const MAX_CONNECTIONS = 64;
/** A connection must deliver its request, and take its answer, within this many ms, or it is closed. */
export const IDLE_TIMEOUT_MS = 10_000;
/** The request head may not exceed this many bytes (a scraper's is a few hundred). */
const MAX_REQUEST_BYTES = 8192;
/** The exposition is cut at a line boundary beyond this many bytes (about 100,000 series). */
export const MAX_ANSWER_BYTES = 8 << 20;

/**
 * Serve `GET /metrics` on `at`; resolves once it listens. HTTP/1.x by hand rather than Deno.serve, so
 * what a local user can hold is bounded: at most MAX_CONNECTIONS connections (when full, the oldest one
 * that has not sent its request is closed for the newcomer), each closed after one answer or after
 * IDLE_TIMEOUT_MS, a request head of at most MAX_REQUEST_BYTES, an answer of at most
 * MAX_ANSWER_BYTES.
 */
export function serveMetrics(
  at: HostPort,
  source: () => MetricsSource,
  idleTimeoutMs: number = IDLE_TIMEOUT_MS,
): Promise<MetricsServer> {
  let cached = new Uint8Array(0);
  let renderedAt = -Infinity;
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: at.hostname, port: at.port, transport: "tcp" });
  } catch (e) {
    return Promise.reject(
      new MetricsError(`--metrics ${at.hostname}:${at.port}: cannot listen: ${(e as Error).message}`),
    );
  }
  const open = new Set<Deno.TcpConn>();
  /** Connections whose request has not arrived yet, oldest first: the first to go when a new one comes. */
  const waiting = new Set<Deno.TcpConn>();
  const encoder = new TextEncoder();
  const metrics = () => {
    const now = performance.now();
    if (now - renderedAt >= RENDER_EVERY_MS) {
      cached = encoder.encode(boundedText(renderMetrics(source())));
      renderedAt = now;
    }
    return cached;
  };
  const serve = async (conn: Deno.TcpConn) => {
    const timer = setTimeout(() => closeQuietly(conn), idleTimeoutMs);
    try {
      waiting.add(conn);
      const head = await readHead(conn);
      waiting.delete(conn);
      if (head === null) return;
      const [method, target] = head.split("\r\n", 1)[0].split(" ");
      const path = (target ?? "").split("?", 1)[0];
      const ok = method === "GET" && path === "/metrics";
      const body = ok ? metrics() : new Uint8Array(0);
      const status = ok ? "200 OK" : "404 Not Found";
      const type = ok ? "content-type: text/plain; version=0.0.4; charset=utf-8\r\n" : "";
      await writeAll(
        conn,
        encoder.encode(
          `HTTP/1.1 ${status}\r\n${type}content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
        ),
      );
      await writeAll(conn, body);
    } catch (e) {
      log.debug("metrics request failed", { error: (e as Error).message });
    } finally {
      clearTimeout(timer);
      open.delete(conn);
      waiting.delete(conn);
      closeQuietly(conn);
    }
  };
  (async () => {
    for await (const conn of listener) {
      if (open.size >= MAX_CONNECTIONS) {
        // Full: the oldest connection still silent makes room, so idle ones cannot lock a scraper out.
        const oldest = waiting.values().next();
        if (oldest.done) {
          closeQuietly(conn);
          continue;
        }
        waiting.delete(oldest.value);
        open.delete(oldest.value);
        closeQuietly(oldest.value);
      }
      open.add(conn);
      serve(conn);
    }
  })().catch((e) => log.debug("metrics listener closed", { error: (e as Error).message }));
  const addr = listener.addr as Deno.NetAddr;
  const address = addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
  return Promise.resolve({
    address,
    close() {
      closeQuietly(listener);
      for (const c of open) closeQuietly(c);
      open.clear();
      return Promise.resolve();
    },
  });
}

/** The request head (up to the blank line), or null when the peer closed or sent more than allowed. */
async function readHead(conn: Deno.Conn): Promise<string | null> {
  const buf = new Uint8Array(MAX_REQUEST_BYTES);
  let used = 0;
  const decoder = new TextDecoder();
  while (used < buf.length) {
    const n = await conn.read(buf.subarray(used));
    if (n === null) return null;
    used += n;
    const text = decoder.decode(buf.subarray(0, used));
    if (text.includes("\r\n\r\n") || text.includes("\n\n")) return text;
  }
  return null;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* already closed */ }
}

/** `text`, cut after its last full line within MAX_ANSWER_BYTES (counted in UTF-16 units, at most as many). */
function boundedText(text: string): string {
  if (text.length <= MAX_ANSWER_BYTES / 3) return text;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= MAX_ANSWER_BYTES) return text;
  const cut = new TextDecoder().decode(bytes.subarray(0, MAX_ANSWER_BYTES));
  log.warn("metrics answer cut to its size limit", { limit_bytes: MAX_ANSWER_BYTES });
  return cut.slice(0, cut.lastIndexOf("\n") + 1);
}
