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
} from "./endpoint.ts";

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
  // Deno allocates 64 KiB per receive without a buffer; this one is reused. One byte more than a slot
  // tells a datagram that fits from one that was cut short.
  #scratch = new Uint8Array(0);

  /** Binds `hostname:port`; throws Deno's own errors (`Deno.errors.AddrInUse`...), mapped by the caller. */
  constructor(hostname: string, port: number) {
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname, port });
    const addr = this.#conn.addr as Deno.NetAddr;
    this.#v6 = addr.hostname.includes(":");
    this.localPort = addr.port;
    this.localAddress = this.#v6 ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
  }

  /** Waits for one datagram and puts it in slot 0 (Deno delivers one at a time). Returns 0 once closed. */
  async receive(batch: DatagramBatch): Promise<number> {
    if (this.#scratch.length !== batch.slotSize + 1) this.#scratch = new Uint8Array(batch.slotSize + 1);
    while (!this.#closed) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await this.#conn.receive(this.#scratch);
      } catch (e) {
        if (this.#closed) return 0;
        throw e;
      }
      const [data, from] = got;
      if (data.length > batch.slotSize) {
        this.truncated++;
        continue;
      }
      const addr = from as Deno.NetAddr;
      if (addr.hostname !== this.#lastHost || addr.port !== this.#lastPort) {
        endpointFromParts(addr.hostname, addr.port, this.#lastEndpoint);
        this.#lastHost = addr.hostname;
        this.#lastPort = addr.port;
      }
      batch.bufs[0].set(data);
      batch.lens[0] = data.length;
      batch.endpoints[0].set(this.#lastEndpoint);
      batch.count = 1;
      return 1;
    }
    return 0;
  }

  /** Sends slots [0, count), one awaited `send` each. Returns how many Deno accepted. */
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
      port: (endpoint[16] << 8) | endpoint[17],
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
