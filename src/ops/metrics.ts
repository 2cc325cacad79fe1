/**
 * Prometheus metrics (`--metrics HOST:PORT`): text exposition format 0.0.4 on `GET /metrics`, served by
 * Deno's HTTP server on the event loop, never on the packet path. Everything comes from the same snapshot
 * `vpn status` shows, so the two agree. What an unauthenticated scraper can make it do is bounded: only
 * `GET /metrics` answers (anything else is a 404 without a body), and the text is rendered at most once
 * per RENDER_EVERY_MS whatever the request rate.
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

/** Serve `GET /metrics` on `at`; resolves once it listens. */
export async function serveMetrics(at: HostPort, source: () => MetricsSource): Promise<MetricsServer> {
  let cached = "";
  let renderedAt = -Infinity;
  const headers = { "content-type": "text/plain; version=0.0.4; charset=utf-8" };
  const listening = Promise.withResolvers<Deno.NetAddr>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: at.hostname,
      port: at.port,
      onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
      onError: (e) => {
        log.debug("metrics request failed", { error: (e as Error).message });
        return new Response(null, { status: 500 });
      },
    }, (req) => {
      if (req.method !== "GET" || new URL(req.url).pathname !== "/metrics") {
        return new Response(null, { status: 404 });
      }
      const now = performance.now();
      if (now - renderedAt >= RENDER_EVERY_MS) {
        cached = renderMetrics(source());
        renderedAt = now;
      }
      return new Response(cached, { headers });
    });
  } catch (e) {
    throw new MetricsError(`--metrics ${at.hostname}:${at.port}: cannot listen: ${(e as Error).message}`);
  }
  const addr = await Promise.race([listening.promise, server.finished.then(() => null)]);
  if (addr === null) throw new MetricsError(`--metrics ${at.hostname}:${at.port}: cannot listen`);
  const address = addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
  return { address, close: () => server.shutdown() };
}
