/**
 * The reference `DatagramSocket`: `Deno.listenDatagram`. Portable and simple, one promise per datagram
 * (Deno has no batch API), so it tops out around 100-200k datagrams/s. See `datagram.ts` for the contract.
 */
import type { DatagramBatch, DatagramSocket } from "./datagram.ts";
import {
  ENDPOINT_BYTES,
  endpointAddress,
  endpointEquals,
  endpointFromParts,
  endpointIsV4,
  endpointPort,
} from "../net/endpoint.ts";

/** Receive calls kept pending at once (see `receive`). */
const RECEIVES_IN_FLIGHT = 32;
const IDLE = 0, PENDING = 1, DONE = 2, FAILED = 3;

/** One pending `DatagramConn.receive` and its buffer. */
class ReceiveSlot {
  readonly buf: Uint8Array;
  state = IDLE;
  data: Uint8Array | null = null;
  addr: Deno.NetAddr | null = null;
  error: unknown = null;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  reset(): void {
    this.state = IDLE;
    this.data = null;
    this.addr = null;
    this.error = null;
  }
}

/** Destinations remembered as `Deno.NetAddr` objects, so a send makes no new object per datagram. */
const ADDR_CACHE_SIZE = 8;

/** `DatagramSocket` over `Deno.DatagramConn`. */
export class DenoDatagramSocket implements DatagramSocket {
  /** Always "deno". */
  readonly kind = "deno" as const;
  readonly localAddress: string;
  readonly localPort: number;
  /** Datagrams dropped on receive because they did not fit a slot. */
  truncated = 0;
  /** Datagrams Deno refused to send (unreachable, wrong family...). */
  sendErrors = 0;
  readonly #conn: Deno.DatagramConn;
  readonly #v6: boolean;
  #closed = false;
  // Receive side: the last source seen, so a steady peer costs no address parsing.
  #lastHost = "";
  #lastPort = -1;
  readonly #lastEndpoint = new Uint8Array(ENDPOINT_BYTES);
  // Send side: a small round-robin cache endpoint bytes -> NetAddr.
  readonly #cacheKeys: Uint8Array[] = [];
  readonly #cacheAddrs: Deno.NetAddr[] = [];
  #cacheNext = 0;
  // Receive buffers, one per pending receive (Deno allocates 64 KiB per receive without one). One byte
  // more than a slot tells a datagram that fits from one that was cut short.
  #slots: ReceiveSlot[] = [];
  /** Finished receives in completion order: a ring of RECEIVES_IN_FLIGHT entries. */
  readonly #ready: ReceiveSlot[] = new Array(RECEIVES_IN_FLIGHT);
  #readyHead = 0;
  #readyCount = 0;
  #waiter: (() => void) | null = null;
  readonly #park = (resolve: () => void): void => {
    this.#waiter = resolve;
  };

  /** Binds `hostname:port`; throws Deno's own errors (`Deno.errors.AddrInUse`...), mapped by the caller. */
  constructor(hostname: string, port: number) {
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname, port });
    const addr = this.#conn.addr as Deno.NetAddr;
    this.#v6 = addr.hostname.includes(":");
    this.localPort = addr.port;
    this.localAddress = this.#v6 ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
  }

  /** Deno's socket has no descriptor to poll: the tunnel uses `receive`. */
  readonly pollFd = -1;

  /** Not available without a descriptor: -1 once closed, else 0 (use `receive`). */
  receiveNow(_batch: DatagramBatch): number {
    return this.#closed ? -1 : 0;
  }

  /**
   * Waits until at least one datagram is there and returns those received so far (up to the batch's
   * capacity), in counter order. Deno delivers one datagram per receive call, so RECEIVES_IN_FLIGHT calls
   * stay pending on rotating buffers: a burst then arrives as one batch instead of one event-loop round
   * per datagram. Returns 0 once closed.
   */
  async receive(batch: DatagramBatch): Promise<number> {
    if (this.#slots.length === 0 || this.#slots[0].buf.length !== batch.slotSize + 1) {
      this.#slots = Array.from({ length: RECEIVES_IN_FLIGHT }, () => new ReceiveSlot(batch.slotSize + 1));
    }
    const slots = this.#slots, ready = this.#ready;
    while (!this.#closed) {
      for (const slot of slots) if (slot.state === IDLE) this.#arm(slot);
      if (this.#readyCount === 0) {
        await new Promise<void>(this.#park);
        continue;
      }
      // Completions arrive in the order the datagrams did, so the queue keeps their order.
      let w = 0;
      while (this.#readyCount > 0 && w < batch.capacity) {
        const slot = ready[this.#readyHead];
        this.#readyHead = (this.#readyHead + 1) % RECEIVES_IN_FLIGHT;
        this.#readyCount--;
        if (slot.state === FAILED) {
          const e = slot.error;
          slot.reset();
          if (this.#closed) return 0;
          throw e;
        }
        const data = slot.data!, addr = slot.addr!;
        if (data.length > batch.slotSize) this.truncated++;
        else {
          if (addr.hostname !== this.#lastHost || addr.port !== this.#lastPort) {
            endpointFromParts(addr.hostname, addr.port, this.#lastEndpoint);
            this.#lastHost = addr.hostname;
            this.#lastPort = addr.port;
          }
          batch.bufs[w].set(data);
          batch.lens[w] = data.length;
          batch.endpoints[w].set(this.#lastEndpoint);
          w++;
        }
        slot.reset();
        this.#arm(slot);
      }
      if (w === 0) continue;
      batch.count = w;
      return w;
    }
    return 0;
  }

  #arm(slot: ReceiveSlot): void {
    slot.state = PENDING;
    this.#conn.receive(slot.buf).then(
      ([data, from]) => {
        slot.data = data;
        slot.addr = from as Deno.NetAddr;
        slot.state = DONE;
        this.#queue(slot);
      },
      (e) => {
        slot.error = e;
        slot.state = FAILED;
        this.#queue(slot);
      },
    );
  }

  #queue(slot: ReceiveSlot): void {
    this.#ready[(this.#readyHead + this.#readyCount) % RECEIVES_IN_FLIGHT] = slot;
    this.#readyCount++;
    this.#wakeReceiver();
  }

  #wakeReceiver(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /**
   * Sends slots [0, count), one awaited `send` each (issuing the batch at once and awaiting them together
   * measured no faster). Returns how many Deno accepted.
   */
  async send(batch: DatagramBatch, count: number): Promise<number> {
    let sent = 0;
    for (let i = 0; i < count && !this.#closed; i++) {
      sent += await this.sendOne(batch.bufs[i], batch.lens[i], batch.endpoints[i]);
    }
    return sent;
  }

  /** Sends one datagram `buf[0, len)` to `endpoint`. Resolves 1 if sent, 0 if refused or closed. */
  async sendOne(buf: Uint8Array, len: number, endpoint: Uint8Array): Promise<number> {
    if (this.#closed) return 0;
    try {
      await this.#conn.send(len === buf.length ? buf : buf.subarray(0, len), this.#netAddr(endpoint));
      return 1;
    } catch {
      if (!this.#closed) this.sendErrors++;
      return 0;
    }
  }

  /** Closes the socket; a pending `receive` resolves 0. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by Deno
    }
    this.#wakeReceiver();
  }

  #netAddr(endpoint: Uint8Array): Deno.NetAddr {
    const keys = this.#cacheKeys;
    for (let i = 0; i < keys.length; i++) if (endpointEquals(keys[i], endpoint)) return this.#cacheAddrs[i];
    // Dual-stack IPv6 sockets want IPv4 destinations in v4-mapped form.
    const host = endpointIsV4(endpoint) && this.#v6
      ? `::ffff:${endpointAddress(endpoint)}`
      : endpointAddress(endpoint);
    const addr: Deno.NetAddr = {
      transport: "udp",
      hostname: host,
      port: endpointPort(endpoint),
    };
    const key = endpoint.slice(0, ENDPOINT_BYTES);
    if (keys.length < ADDR_CACHE_SIZE) {
      keys.push(key);
      this.#cacheAddrs.push(addr);
    } else {
      keys[this.#cacheNext] = key;
      this.#cacheAddrs[this.#cacheNext] = addr;
      this.#cacheNext = (this.#cacheNext + 1) % ADDR_CACHE_SIZE;
    }
    return addr;
  }
}
