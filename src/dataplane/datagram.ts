/**
 * The UDP contract of the data path: a bound socket that moves datagrams in preallocated batches.
 * Implementations: "batched" (`datagram_batched.ts`, recvmmsg/sendmmsg through FFI) and "deno"
 * (`datagram_deno.ts`, `Deno.listenDatagram`); `datagram_select.ts` opens one.
 */
import { ENDPOINT_BYTES } from "../net/endpoint.ts";

/** The implementations of the socket. */
export const DATAGRAM_KINDS = ["batched", "deno"] as const;
/** Which implementation a socket uses. */
export type DatagramKind = typeof DATAGRAM_KINDS[number];

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
   * True when datagrams already taken from the kernel (a UDP_GRO train cut only partly into the last
   * batch) wait for the next `receiveNow`, which the socket's descriptor no longer polls readable for.
   */
  readonly pending?: boolean;
  /** True when UDP_GRO is on (batches need slots of 65535 bytes). */
  readonly gro?: boolean;
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
