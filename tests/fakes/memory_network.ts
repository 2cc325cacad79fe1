/**
 * An in-memory datagram network behind the data path's `DatagramSocket` contract (the pollFd = -1 path,
 * like the "deno" socket), in the spirit of wireguard-go's in-memory bind: sockets bound to made-up
 * addresses, delivery by copying, and hooks for what an attacker or a NAT does (see, drop, inject, rebind).
 */
import type { DatagramBatch, DatagramSocket } from "../../src/dataplane/datagram.ts";
import { type Endpoint, endpointFromParts, endpointToString } from "../../src/net/endpoint.ts";

/** Datagrams queued for one socket beyond this are dropped, as a full socket buffer would. */
const QUEUE_LIMIT = 4096;

/** One datagram on the wire (copies). */
export interface WireDatagram {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly data: Uint8Array;
}

/** The network: sockets by endpoint. */
export class MemoryNetwork {
  readonly #bound = new Map<string, MemorySocket>();
  /** Sees every datagram a socket sends, before delivery; returning false drops it. */
  tap: ((d: WireDatagram) => boolean) | null = null;

  /** A socket bound to `host:port` (an IP literal). */
  bind(host: string, port: number): MemorySocket {
    const ep = endpointFromParts(host, port);
    const key = endpointToString(ep);
    if (this.#bound.has(key)) throw new Error(`${key} is already bound`);
    const s = new MemorySocket(this, ep);
    this.#bound.set(key, s);
    return s;
  }

  /** Moves `socket` to `host:port`, as a NAT that picks a new mapping: its next datagrams come from there. */
  move(socket: MemorySocket, host: string, port: number): void {
    this.#bound.delete(endpointToString(socket.endpoint));
    socket.endpoint = endpointFromParts(host, port);
    this.#bound.set(endpointToString(socket.endpoint), socket);
  }

  /** Delivers `data` to `to` as if `from` had sent it (spoofed, replayed); false when nobody is bound there. */
  inject(from: Endpoint, to: Endpoint, data: Uint8Array): boolean {
    const dest = this.#bound.get(endpointToString(to));
    return dest !== undefined && dest.enqueue(data.slice(), from.slice());
  }

  /** Called by a socket's send. */
  send(from: Endpoint, to: Endpoint, data: Uint8Array): void {
    const d = { from: from.slice(), to: to.slice(), data: data.slice() };
    if (this.tap !== null && !this.tap(d)) return;
    this.#bound.get(endpointToString(to))?.enqueue(d.data, d.from);
  }

  /** Called by a socket's close. */
  unbind(socket: MemorySocket): void {
    const key = endpointToString(socket.endpoint);
    if (this.#bound.get(key) === socket) this.#bound.delete(key);
  }
}

/** A socket of a `MemoryNetwork`. */
export class MemorySocket implements DatagramSocket {
  /** It behaves as the "deno" kind: no descriptor to poll, an asynchronous `receive`. */
  readonly kind = "deno" as const;
  readonly pollFd = -1;
  truncated = 0;
  sendErrors = 0;
  /** Datagrams delivered to this socket so far. */
  received = 0;
  endpoint: Endpoint;
  readonly #net: MemoryNetwork;
  readonly #queue: { data: Uint8Array; from: Endpoint }[] = [];
  #closed = false;
  #waiter: (() => void) | null = null;

  constructor(net: MemoryNetwork, endpoint: Endpoint) {
    this.#net = net;
    this.endpoint = endpoint;
  }

  get localAddress(): string {
    return endpointToString(this.endpoint);
  }

  get localPort(): number {
    return (this.endpoint[16] << 8) | this.endpoint[17];
  }

  /** Called by the network: queue one datagram; false when full or closed. */
  enqueue(data: Uint8Array, from: Endpoint): boolean {
    if (this.#closed || this.#queue.length >= QUEUE_LIMIT) return false;
    this.#queue.push({ data, from });
    this.received++;
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
    return true;
  }

  async receive(batch: DatagramBatch): Promise<number> {
    while (!this.#closed) {
      if (this.#queue.length === 0) {
        await new Promise<void>((resolve) => this.#waiter = resolve);
        continue;
      }
      let n = 0;
      while (n < batch.capacity && this.#queue.length > 0) {
        const { data, from } = this.#queue.shift()!;
        if (data.length > batch.slotSize) {
          this.truncated++;
          continue;
        }
        batch.bufs[n].set(data);
        batch.lens[n] = data.length;
        batch.endpoints[n].set(from);
        n++;
      }
      if (n === 0) continue;
      batch.count = n;
      return n;
    }
    return 0;
  }

  receiveNow(_batch: DatagramBatch): number {
    return this.#closed ? -1 : 0;
  }

  send(batch: DatagramBatch, count: number): number {
    if (this.#closed) return 0;
    for (let i = 0; i < count; i++) {
      this.#net.send(this.endpoint, batch.endpoints[i], batch.bufs[i].subarray(0, batch.lens[i]));
    }
    return count;
  }

  sendOne(buf: Uint8Array, len: number, endpoint: Uint8Array): number {
    if (this.#closed) return 0;
    this.#net.send(this.endpoint, endpoint, buf.subarray(0, len));
    return 1;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#net.unbind(this);
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }
}
