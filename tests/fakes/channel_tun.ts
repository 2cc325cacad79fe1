/**
 * An in-memory TUN device behind the data path's `Tun` contract, like wireguard-go's channel TUN: the test
 * plays the host's IP stack, injecting packets the tunnel reads and taking the packets the tunnel writes.
 * With `vnetHdr` it has the offload capability: what is injected and written carries the 10-byte
 * virtio_net_hdr in front, as on a TUN opened with IFF_VNET_HDR.
 */
import type { Tun } from "../../src/dataplane/tun.ts";

/** Packets queued for the tunnel beyond this are dropped, as a full TUN queue would. */
const QUEUE_LIMIT = 1024;

/** A `Tun` whose other side is the test. */
export class ChannelTun implements Tun {
  readonly name: string;
  readonly vnetHdr: boolean;
  /** Packets the tunnel wrote and nobody took yet, oldest first. */
  readonly #written: Uint8Array[] = [];
  readonly #toTunnel: Uint8Array[] = [];
  #closed = false;
  #readable: ((ready: boolean) => void) | null = null;
  #writeWaiter: (() => void) | null = null;

  constructor(name: string, opts: { vnetHdr?: boolean } = {}) {
    this.name = name;
    this.vnetHdr = opts.vnetHdr === true;
  }

  /** The host sends `pkt` into the tunnel (a copy is queued). False when the queue is full or closed. */
  inject(pkt: Uint8Array): boolean {
    if (this.#closed || this.#toTunnel.length >= QUEUE_LIMIT) return false;
    this.#toTunnel.push(pkt.slice());
    const r = this.#readable;
    this.#readable = null;
    r?.(true);
    return true;
  }

  /** Packets the tunnel wrote so far, taken out of the device. */
  takeWritten(): Uint8Array[] {
    return this.#written.splice(0);
  }

  /** Waits until the tunnel wrote at least `count` packets not yet taken, then takes them; throws after `timeoutMs`. */
  async nextWritten(count = 1, timeoutMs = 2000): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.#written.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${this.name}: ${this.#written.length} of ${count} packets after ${timeoutMs} ms`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#writeWaiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#written.splice(0, count);
  }

  read(buf: Uint8Array): number {
    if (this.#closed) return 0;
    const pkt = this.#toTunnel.shift();
    if (pkt === undefined) return 0;
    const n = Math.min(pkt.length, buf.length); // a real TUN truncates to the buffer too
    buf.set(pkt.subarray(0, n));
    return n;
  }

  write(buf: Uint8Array, len: number): boolean {
    if (this.#closed || len > buf.byteLength) return false;
    this.#written.push(buf.slice(0, len));
    const w = this.#writeWaiter;
    this.#writeWaiter = null;
    w?.();
    return true;
  }

  waitReadable(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#toTunnel.length > 0) return Promise.resolve(true);
    return new Promise((resolve) => this.#readable = resolve);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const r = this.#readable;
    this.#readable = null;
    r?.(false);
  }
}
