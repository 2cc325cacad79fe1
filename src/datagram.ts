/**
 * The UDP interface of the data path, with two implementations:
 * - "batched": libc socket via FFI, `recvmmsg`/`sendmmsg` (one system call per batch, sync sends);
 * - "deno": `Deno.listenDatagram`, the portable reference (one promise per datagram).
 * `openDatagramSocket({ kind: "auto" })` takes "batched" when FFI works and says why when it does not.
 */
import type { UdpSocket } from "../ffi/udp_socket.ts";
import { DenoDatagramSocket } from "./datagram_deno.ts";
import {
  type Endpoint,
  ENDPOINT_BYTES,
  endpointFromParts,
  endpointIsV4,
  endpointToString,
} from "./endpoint.ts";

/** Which implementation a socket uses. */
export type DatagramKind = "batched" | "deno";

/** Preallocated slots reused for every receive/send; nothing is allocated per datagram. */
export class DatagramBatch {
  /** Number of slots. */
  readonly capacity: number;
  /** Bytes per slot; a received datagram larger than this is dropped (and counted by the socket). */
  readonly slotSize: number;
  /** All slots back to back in one buffer (slot i at `i * slotSize`), so the kernel can fill them in one call. */
  readonly data: Uint8Array;
  /** Slot views into `data`, each `slotSize` bytes. */
  readonly bufs: Uint8Array[];
  /** Datagram length per slot. */
  readonly lens: Int32Array;
  /** All endpoints back to back (`capacity * ENDPOINT_BYTES`). */
  readonly endpointData: Uint8Array;
  /** 18-byte endpoint per slot (views into `endpointData`): source on receive, destination on send. */
  readonly endpoints: Uint8Array[];
  /** Slots in use; set by `receive`, set by the caller before `send`. */
  count = 0;

  /** `capacity` slots of `slotSize` bytes each. */
  constructor(capacity: number, slotSize: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1024) {
      throw new RangeError(`batch capacity must be 1..1024, got ${capacity}`);
    }
    if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > 65535) {
      throw new RangeError(`batch slot size must be 1..65535, got ${slotSize}`);
    }
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.data = new Uint8Array(capacity * slotSize);
    this.bufs = [];
    this.endpointData = new Uint8Array(capacity * ENDPOINT_BYTES);
    this.endpoints = [];
    for (let i = 0; i < capacity; i++) {
      this.bufs.push(this.data.subarray(i * slotSize, (i + 1) * slotSize));
      this.endpoints.push(this.endpointData.subarray(i * ENDPOINT_BYTES, (i + 1) * ENDPOINT_BYTES));
    }
    this.lens = new Int32Array(capacity);
  }
}

/** A bound UDP socket moving datagrams in batches. */
export interface DatagramSocket {
  /** Which implementation this is. */
  readonly kind: DatagramKind;
  /** Local address as text, e.g. "[::]:51820" or "0.0.0.0:51820". */
  readonly localAddress: string;
  /** Local port (the one the kernel picked when bound to port 0). */
  readonly localPort: number;
  /** Datagrams dropped on receive because they were larger than a slot. */
  readonly truncated: number;
  /** Datagrams refused on send (unreachable, wrong address family...). */
  readonly sendErrors: number;
  /**
   * Waits until at least one datagram is there, then fills batch slots [0, n) and returns n (<= capacity;
   * one bounded drain so the event loop still runs). Returns 0 once closed. One receive at a time.
   */
  receive(batch: DatagramBatch): Promise<number>;
  /**
   * A file descriptor that polls readable when `receiveNow` has datagrams, or -1 when there is none (the
   * "deno" implementation): then only `receive` can be used.
   */
  readonly pollFd: number;
  /**
   * Takes the datagrams waiting now, without blocking, into slots [0, n) and returns n (0 when none),
   * or -1 once closed. Only for sockets with a `pollFd`.
   */
  receiveNow(batch: DatagramBatch): number;
  /**
   * Sends slots [0, count) each to its endpoint. Returns how many were handed to the kernel (a full socket
   * buffer drops the rest; the caller counts them). Sync in the batched impl, a Promise in the deno impl.
   */
  send(batch: DatagramBatch, count: number): number | Promise<number>;
  /** One datagram `buf[0, len)` to `endpoint`, for control messages (handshakes). 1 if sent, else 0. */
  sendOne(buf: Uint8Array, len: number, endpoint: Uint8Array): number | Promise<number>;
  /** Closes the socket; a pending `receive` returns 0 promptly. */
  close(): void;
}

/** The socket could not be opened; names the address and the cause. */
export class DatagramError extends Error {
  /** The address that was asked for, e.g. "[::]:51820". */
  readonly address: string;
  /** errno name when known ("EADDRINUSE", "EACCES", ...), else "". */
  readonly code: string;
  constructor(address: string, code: string, cause: string) {
    super(`cannot open UDP socket on ${address}: ${cause}${code ? ` (${code})` : ""}`);
    this.name = "DatagramError";
    this.address = address;
    this.code = code;
  }
}

/** Options for `openDatagramSocket`. */
export interface OpenDatagramOptions {
  /** "auto" = "batched" when FFI works, else "deno". */
  kind: "auto" | DatagramKind;
  /** IP literal to bind: "::" (dual-stack, the server default), "0.0.0.0", "127.0.0.1", "[::1]", ... */
  hostname: string;
  /** Port to bind; 0 lets the kernel pick one (clients). */
  port: number;
}

/** An open socket and, when it differs from what was asked, why. */
export interface OpenedDatagramSocket {
  socket: DatagramSocket;
  /** Set when "auto" could not use "batched": the reason, for the log. */
  fallbackReason?: string;
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

/** Poll timeout of the batched receive: bounds how long a wait holds a worker thread. */
const POLL_MS = 250;

type UdpModule = typeof import("../ffi/udp_socket.ts");

/** `DatagramSocket` over the FFI socket: one `poll` per wake-up, one `recvmmsg`/`sendmmsg` per batch. */
class BatchedDatagramSocket implements DatagramSocket {
  readonly kind = "batched" as const;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #sock: UdpSocket;
  #receiving = false;

  constructor(sock: UdpSocket) {
    this.#sock = sock;
    const local = sock.localEndpoint();
    this.localPort = (local[16] << 8) | local[17];
    // An IPv6 wildcard reads as "[::]:port" even though "::" is not v4-mapped; IPv4 sockets print dotted.
    this.localAddress = endpointToString(local);
  }

  get truncated(): number {
    return this.#sock.truncated;
  }

  get sendErrors(): number {
    return this.#sock.sendErrors;
  }

  async receive(batch: DatagramBatch): Promise<number> {
    if (this.#receiving) throw new Error("DatagramSocket.receive: another receive is already pending");
    this.#receiving = true;
    try {
      while (!this.#sock.closed) {
        if (!(await this.#sock.waitReadable(POLL_MS))) continue;
        const n = this.#sock.receiveBatch(batch);
        if (n > 0) {
          batch.count = n;
          return n;
        }
      }
      batch.count = 0;
      return 0;
    } finally {
      this.#receiving = false;
    }
  }

  get pollFd(): number {
    return this.#sock.fd;
  }

  receiveNow(batch: DatagramBatch): number {
    if (this.#sock.closed) return -1;
    const n = this.#sock.receiveBatch(batch);
    batch.count = n;
    return n;
  }

  send(batch: DatagramBatch, count: number): number {
    return this.#sock.sendBatch(batch, count);
  }

  sendOne(buf: Uint8Array, len: number, endpoint: Uint8Array): number {
    return this.#sock.sendOne(buf, len, endpoint);
  }

  close(): void {
    this.#sock.close();
  }
}

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

function openBatched(udp: UdpModule, hostname: string, port: number): DatagramSocket {
  const { host, ep, text } = bindEndpoint(hostname, port);
  // An IPv4 literal gets an AF_INET socket; everything else a dual-stack AF_INET6 one.
  const family = host.includes(":") ? 6 : 4;
  try {
    return new BatchedDatagramSocket(udp.UdpSocket.open(family, ep));
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
      // Loaded on demand: the module dlopens libc at import, which throws without --allow-ffi.
      const udp: UdpModule = await import("../ffi/udp_socket.ts");
      open = (h, p) => openBatched(udp, h, p);
    } catch (e) {
      const why = `FFI UDP socket unavailable (${e instanceof Error ? e.message : String(e)})`;
      if (opts.kind === "batched") throw new DatagramError(`${opts.hostname}:${opts.port}`, "", why);
      fallbackReason = why;
    }
  }
  open ??= openDeno;
  const host = opts.hostname.replace(/^\[(.*)\]$/, "$1");
  try {
    return { socket: open(host, opts.port), fallbackReason };
  } catch (e) {
    if (host !== "::" || !isNoIpv6(e)) throw e;
    const socket = open("0.0.0.0", opts.port);
    return { socket, fallbackReason, ipv4OnlyReason: (e as Error).message };
  }
}
