/**
 * What server and client share around the packet loops: open the pieces (AEAD backend, TUN device, UDP
 * socket, undo log), construct the role with them, then run it with the control socket, metrics, the
 * once-a-second timer and SIGHUP; every host change is undone on the way out.
 */
import { type AeadChoice, selectAeadBackend } from "../dataplane/aead_select.ts";
import { Cleanup, installSignalCleanup } from "../host/cleanup.ts";
import { serveControl } from "../ops/control.ts";
import { openDatagramSocket, type UdpChoice } from "../dataplane/datagram_select.ts";
import type { HostPort } from "../net/host_port.ts";
import { systemNetwork } from "../host/host_setup.ts";
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
import type { Role, RolePieces } from "./role.ts";

/** How a server or client sets itself up. */
export interface RuntimeOptions {
  readonly tun: string;
  readonly crypto: AeadChoice;
  readonly udp: UdpChoice;
  /** TUN offloads: "auto" asks the kernel for them, "off" opens a plain TUN. */
  readonly offload: "auto" | "off";
  /** UDP address to bind (the client binds port 0 of its server's family). */
  readonly bind: HostPort;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Where to serve Prometheus metrics; undefined = off. */
  readonly metrics?: HostPort;
  /** Construct the server or client on the opened pieces. */
  role(pieces: RolePieces): Role;
  /** Host changes beyond the TUN device (forwarding, NAT, routes), each registered with `pieces.cleanup`. */
  hostChanges?(pieces: RolePieces): Promise<void>;
  /** On SIGHUP: re-read the config (a failure is logged and changes nothing). */
  reload?(): Promise<void>;
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
  let role: Role | null = null;
  installSignalCleanup(cleanup, (reason, error) => {
    if (reason === "fatal") log.error("fatal error", { error: (error as Error)?.message ?? String(error) });
    else log.info("stopping", { signal: reason });
    notifySystemd("STOPPING=1");
    role?.stop();
  });
  const now = () => performance.now();
  const startedAt = now();
  try {
    // Loaded here, not at import: the module opens libc, which only the running roles need.
    const { TunDevice } = await import("../../ffi/tun_device.ts");
    const tun = TunDevice.open(o.tun, { offload: o.offload === "auto" });
    if (tun.offloadRefusal !== "") {
      log.warn("TUN offload refused, carrying on without it", { reason: tun.offloadRefusal });
    }
    cleanup.add(`close TUN ${tun.name}`, () => tun.close());
    // UDP_GRO only with TUN offloads: the tunnel sizes its receive slots for trains only then.
    const opened = await openDatagramSocket({
      kind: o.udp,
      hostname: o.bind.hostname,
      port: o.bind.port,
      gro: tun.vnetHdr,
    });
    const udp = opened.socket;
    cleanup.add(`close UDP ${udp.localAddress}`, () => udp.close());
    if (opened.fallbackReason) {
      log.warn("batched UDP unavailable, using Deno's UDP", { reason: opened.fallbackReason });
    }
    if (opened.groRefusal) log.warn("UDP GRO refused, carrying on without it", { reason: opened.groRefusal });
    if (opened.ipv4OnlyReason) {
      log.warn("IPv6 unavailable, listening on IPv4 only", { reason: opened.ipv4OnlyReason });
    }
    const pieces: RolePieces = {
      tun,
      udp,
      aead: chosen.backend,
      cleanup,
      network: systemNetwork,
      handshakes: new HandshakeStats(),
      now,
      startedAt,
    };
    const r = role = o.role(pieces);
    r.configure();
    await o.hostChanges?.(pieces);
    const control = await serveControl(tun.name, () => r.status());
    cleanup.add(`remove ${control.path}`, () => control.close());
    if (o.metrics) {
      const metrics = await serveMetrics(o.metrics, () => ({
        report: r.status(),
        handshakes: pieces.handshakes,
        residentBytes: Deno.memoryUsage().rss,
      }));
      cleanup.add(`stop metrics on ${metrics.address}`, () => metrics.close());
      log.info("serving metrics", { url: `http://${metrics.address}/metrics` });
    }
    const timer = setInterval(() => r.tick(), TICK_MS);
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
    r.started();
    log.info("data path", {
      crypto: chosen.backend.kind,
      udp: udp.kind,
      offload: [...tun.offloads, ...(udp.gro === true ? ["gro"] : [])].join("+") || "off",
    });
    notifySystemd("READY=1");
    await r.run();
    await cleanup.runAll();
    return 0;
  } catch (e) {
    role?.stop();
    await cleanup.runAll();
    throw e;
  }
}
