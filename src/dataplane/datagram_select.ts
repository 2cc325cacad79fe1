/**
 * Opens the data path's UDP socket: "batched" (FFI) when it works, else Deno's own, and says why.
 */
import { type Endpoint, endpointFromParts, endpointIsV4 } from "../net/endpoint.ts";
import { BatchedDatagramSocket } from "./datagram_batched.ts";
import { DATAGRAM_KINDS, DatagramError, type DatagramSocket } from "./datagram.ts";
import { DenoDatagramSocket } from "./datagram_deno.ts";

type UdpModule = typeof import("../../ffi/udp_socket.ts");

/** What the configuration may ask for (`udp`, `--udp`); the first is the default. */
export const UDP_CHOICES = ["auto", ...DATAGRAM_KINDS] as const;
/** One of `UDP_CHOICES`. */
export type UdpChoice = typeof UDP_CHOICES[number];

/** Options for `openDatagramSocket`. */
export interface OpenDatagramOptions {
  /** "auto" = "batched" when FFI works, else "deno". */
  kind: UdpChoice;
  /** IP literal to bind: "::" (dual-stack, the server default), "0.0.0.0", "127.0.0.1", "[::1]", ... */
  hostname: string;
  /** Port to bind; 0 lets the kernel pick one (clients). */
  port: number;
  /** Ask for UDP_GRO (batched only; the caller's batches must have 65535-byte slots). */
  gro?: boolean;
}

/** An open socket and, when it differs from what was asked, why. */
export interface OpenedDatagramSocket {
  socket: DatagramSocket;
  /** Set when "auto" could not use "batched": the reason, for the log. */
  fallbackReason?: string;
  /** Set when UDP_GRO was asked for and refused: why. */
  groRefusal?: string;
  /** Set when "::" was asked but IPv6 is unavailable and the socket is IPv4-only ("0.0.0.0"): why. */
  ipv4OnlyReason?: string;
}

/** The wildcard address a client binds to reach `peer`: "0.0.0.0" for an IPv4 peer, "::" for IPv6. */
export function wildcardAddressFor(peer: Endpoint): string {
  return endpointIsV4(peer) ? "0.0.0.0" : "::";
}

const HINTS: Record<string, string> = {
  EADDRINUSE: "address already in use; another process (another vpn?) holds this port",
  EACCES: "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE",
  EADDRNOTAVAIL: "address not available; it is not assigned to any interface of this host",
  EAFNOSUPPORT: "address family not supported; IPv6 may be disabled on this host",
};

/** "[::]" -> "::"; validates that `hostname` is an IP literal and returns its 18-byte form. */
function bindEndpoint(hostname: string, port: number): { host: string; ep: Uint8Array; text: string } {
  const host = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  const text = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new DatagramError(text, "", "port must be 0..65535");
  }
  try {
    return { host, ep: endpointFromParts(host, port), text };
  } catch {
    throw new DatagramError(text, "", `${JSON.stringify(hostname)} is not an IP address to bind`);
  }
}

/**
 * Socket buffer asked for (the kernel doubles it; memory is used only while datagrams wait). A flood fills
 * the buffer while the process is not scheduled: with 4 MiB a junk flood at ~200k/s on a busy 2-CPU host made
 * the kernel drop 4-20 % of everything, data included; with 32 MiB 0-2 %.
 */
const SOCKET_BUFFER_BYTES = 32 << 20;

function openBatched(udp: UdpModule, hostname: string, port: number, gro: boolean): BatchedDatagramSocket {
  const { host, ep, text } = bindEndpoint(hostname, port);
  // An IPv4 literal gets an AF_INET socket; everything else a dual-stack AF_INET6 one.
  const family = host.includes(":") ? 6 : 4;
  try {
    return new BatchedDatagramSocket(
      udp.UdpSocket.open(family, ep, { bufferBytes: SOCKET_BUFFER_BYTES, gro }),
    );
  } catch (e) {
    const info = udp.socketErrorCode(e);
    if (!info) throw e;
    throw new DatagramError(text, info.name, HINTS[info.name] ?? `${info.call}: ${(e as Error).message}`);
  }
}

function openDeno(hostname: string, port: number): DatagramSocket {
  const { host, text } = bindEndpoint(hostname, port);
  if (typeof Deno.listenDatagram !== "function") {
    throw new DatagramError(
      text,
      "",
      'Deno.listenDatagram needs --unstable-net (deno.json "unstable": ["net"])',
    );
  }
  try {
    return new DenoDatagramSocket(host, port);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const code = e instanceof Deno.errors.AddrInUse
      ? "EADDRINUSE"
      : e instanceof Deno.errors.PermissionDenied
      ? "EACCES"
      : e instanceof Deno.errors.AddrNotAvailable || /os error 99\b/.test(msg)
      ? "EADDRNOTAVAIL"
      : /os error 97\b/.test(msg)
      ? "EAFNOSUPPORT"
      : "";
    throw new DatagramError(text, code, HINTS[code] ?? msg);
  }
}

/** True for the errors that mean "this host has no IPv6", where "::" falls back to "0.0.0.0". */
function isNoIpv6(e: unknown): boolean {
  return e instanceof DatagramError && (e.code === "EAFNOSUPPORT" || e.code === "EADDRNOTAVAIL");
}

/**
 * Opens and binds a UDP socket. "::" is dual-stack (IPv4 peers appear as v4-mapped endpoints) and falls
 * back to "0.0.0.0" when the host has no IPv6. "auto" tries "batched", then "deno" with the reason.
 * Bind failures (EADDRINUSE, EACCES, ...) throw `DatagramError` and are never hidden by a fallback.
 */
export async function openDatagramSocket(opts: OpenDatagramOptions): Promise<OpenedDatagramSocket> {
  let fallbackReason: string | undefined;
  let open: ((hostname: string, port: number) => DatagramSocket) | undefined;
  if (opts.kind !== "deno") {
    try {
      // Loaded on demand, and libc opened before binding: without --allow-ffi this throws here.
      const udp: UdpModule = await import("../../ffi/udp_socket.ts");
      udp.loadUdp();
      open = (h, p) => openBatched(udp, h, p, opts.gro === true);
    } catch (e) {
      const why = `FFI UDP socket unavailable (${e instanceof Error ? e.message : String(e)})`;
      if (opts.kind === "batched") throw new DatagramError(`${opts.hostname}:${opts.port}`, "", why);
      fallbackReason = why;
    }
  }
  open ??= openDeno;
  const host = opts.hostname.replace(/^\[(.*)\]$/, "$1");
  const groRefusal = (s: DatagramSocket) =>
    s instanceof BatchedDatagramSocket && s.groRefusal !== "" ? s.groRefusal : undefined;
  try {
    const socket = open(host, opts.port);
    return { socket, fallbackReason, groRefusal: groRefusal(socket) };
  } catch (e) {
    if (host !== "::" || !isNoIpv6(e)) throw e;
    const socket = open("0.0.0.0", opts.port);
    return { socket, fallbackReason, ipv4OnlyReason: (e as Error).message, groRefusal: groRefusal(socket) };
  }
}
