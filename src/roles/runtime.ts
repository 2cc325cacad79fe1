/**
 * What server and client share around the packet loops: the data-path choice, the TUN device, the UDP
 * socket, the control socket, the once-a-second timer, and undoing every host change on the way out.
 */
import { TunDevice } from "../../ffi/tun_device.ts";
import type { AeadBackend } from "../protocol/aead.ts";
import { type AeadChoice, selectAeadBackend } from "../dataplane/aead_select.ts";
import type { Cidr } from "../net/cidr.ts";
import { Cleanup, installSignalCleanup } from "../host/cleanup.ts";
import { serveControl } from "../ops/control.ts";
import type { DatagramSocket } from "../dataplane/datagram.ts";
import { openDatagramSocket } from "../dataplane/datagram_select.ts";
import type { HostPort } from "../net/host_port.ts";
import { configureInterface } from "../host/host_setup.ts";
import {
  log,
  type LogFormat,
  type LogLevel,
  setLogLevel,
  setLogOutput,
  stderrIsJournal,
} from "../ops/log.ts";
import { HandshakeStats } from "../ops/handshake_stats.ts";
import { serveMetrics } from "../ops/metrics.ts";
import { notifySystemd } from "../ops/systemd_notify.ts";
import type { PeerStatus, StatusReport } from "../ops/status_report.ts";
import { Tunnel, type TunnelHost } from "../dataplane/tunnel.ts";

/** How a server or client sets itself up. */
export interface RuntimeOptions {
  readonly role: "server" | "client";
  readonly tun: string;
  readonly crypto: AeadChoice;
  readonly udp: "auto" | "batched" | "deno";
  /** UDP address to bind (the client binds port 0 of its server's family). */
  readonly bind: HostPort;
  /** Largest MTU the tunnel may be given (sizes the packet slots). */
  readonly mtu: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Where to serve Prometheus metrics; undefined = off. */
  readonly metrics?: HostPort;
  /** Give the fresh TUN device its addresses, MTU and up flag. */
  configureTun(rt: Runtime): void;
  /** Further host changes (forwarding, NAT, routes), each registered with `rt.cleanup`. */
  hostChanges?(rt: Runtime): Promise<void>;
  /** The server or client object the loops call back. */
  host(rt: Runtime): TunnelHost;
  /** Called once a second. */
  tick(): void;
  /** The status snapshot. */
  status(): StatusReport;
  /** Log the start line. */
  started(rt: Runtime): void;
  /** On SIGHUP: re-read the config (a failure is logged and changes nothing). */
  reload?(): Promise<void>;
}

/** The running pieces, for the server and client. */
export interface Runtime {
  readonly cleanup: Cleanup;
  readonly aead: AeadBackend;
  readonly tunName: string;
  readonly udp: DatagramSocket;
  readonly tunnel: Tunnel;
  /** Handshakes completed and refused, for the metrics. */
  readonly handshakes: HandshakeStats;
  /** Set addresses and MTU of the TUN device (and the tunnel's packet size limit). */
  configureInterface(address: Cidr | null, address6: Cidr | null, mtu: number): void;
  /** A status snapshot with the common fields filled in. */
  report(
    role: "server" | "client",
    address: string | null,
    listen: string | null,
    peers: PeerStatus[],
  ): StatusReport;
}

const TICK_MS = 1000;

/** Set everything up, run the loops until a signal stops the process; undoes host changes on failure. */
export async function startRuntime(o: RuntimeOptions): Promise<number> {
  setLogLevel(o.logLevel);
  // Under journald, lines carry their priority and the journal stamps the time.
  setLogOutput({ format: o.logFormat, journal: stderrIsJournal(Deno.env.get("JOURNAL_STREAM")) });
  const chosen = await selectAeadBackend(o.crypto);
  if (chosen.fallbackReason) {
    log.warn("OpenSSL unavailable, using WebCrypto", { reason: chosen.fallbackReason });
  }
  const cleanup = new Cleanup((f) =>
    log.error("cleanup step failed", {
      step: f.description,
      error: (f.error as Error)?.message ?? String(f.error),
    })
  );
  let tunnel: Tunnel | null = null;
  installSignalCleanup(cleanup, (reason, error) => {
    if (reason === "fatal") log.error("fatal error", { error: (error as Error)?.message ?? String(error) });
    else log.info("stopping", { signal: reason });
    notifySystemd("STOPPING=1");
    tunnel?.stop();
  });
  const startedAt = performance.now();
  try {
    const tun = TunDevice.open(o.tun);
    cleanup.add(`close TUN ${tun.name}`, () => tun.close());
    const opened = await openDatagramSocket({ kind: o.udp, hostname: o.bind.hostname, port: o.bind.port });
    const udp = opened.socket;
    cleanup.add(`close UDP ${udp.localAddress}`, () => udp.close());
    if (opened.fallbackReason) {
      log.warn("batched UDP unavailable, using Deno's UDP", { reason: opened.fallbackReason });
    }
    if (opened.ipv4OnlyReason) {
      log.warn("IPv6 unavailable, listening on IPv4 only", { reason: opened.ipv4OnlyReason });
    }
    const rt: { -readonly [K in keyof Runtime]: Runtime[K] } = {
      cleanup,
      aead: chosen.backend,
      tunName: tun.name,
      udp,
      tunnel: null as unknown as Tunnel,
      handshakes: new HandshakeStats(),
      configureInterface(address, address6, mtu) {
        configureInterface(tun.name, address, address6, mtu);
        rt.tunnel.mtu = mtu;
      },
      report: (role, address, listen, peers) => ({
        version: 1,
        role,
        interface: tun.name,
        address,
        listen,
        uptime_s: Math.round((performance.now() - startedAt) / 100) / 10,
        crypto: chosen.backend.kind,
        udp: udp.kind,
        peers,
        drops: { ...rt.tunnel.counters.drops },
      }),
    };
    const host = o.host(rt);
    tunnel = rt.tunnel = new Tunnel(tun, udp, host, o.mtu);
    o.configureTun(rt);
    await o.hostChanges?.(rt);
    const control = await serveControl(tun.name, () => o.status());
    cleanup.add(`remove ${control.path}`, () => control.close());
    if (o.metrics) {
      const metrics = await serveMetrics(o.metrics, () => ({
        report: o.status(),
        handshakes: rt.handshakes,
        residentBytes: Deno.memoryUsage().rss,
      }));
      cleanup.add(`stop metrics on ${metrics.address}`, () => metrics.close());
      log.info("serving metrics", { url: `http://${metrics.address}/metrics` });
    }
    const timer = setInterval(() => o.tick(), TICK_MS);
    cleanup.add("stop timer", () => clearInterval(timer));
    if (o.reload) {
      const reload = o.reload;
      const onHup = () =>
        reload().catch((e) =>
          log.error("reload failed; keeping the running config", { error: (e as Error).message })
        );
      Deno.addSignalListener("SIGHUP", onHup);
      cleanup.add("stop SIGHUP handler", () => Deno.removeSignalListener("SIGHUP", onHup));
    }
    o.started(rt);
    log.info("data path", { crypto: chosen.backend.kind, udp: udp.kind });
    notifySystemd("READY=1");
    await tunnel.run();
    await cleanup.runAll();
    return 0;
  } catch (e) {
    tunnel?.stop();
    await cleanup.runAll();
    throw e;
  }
}
