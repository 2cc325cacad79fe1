/**
 * `DatagramSocket` over the FFI socket (`ffi/udp_socket.ts`): one `poll` per wake-up, one
 * `recvmmsg`/`sendmmsg` per batch.
 */
import type { UdpSocket } from "../../ffi/udp_socket.ts";
import { endpointPort, endpointToString } from "../net/endpoint.ts";
import type { DatagramBatch, DatagramSocket } from "./datagram.ts";

/** Poll timeout of the batched receive: bounds how long a wait holds a worker thread. */
const POLL_MS = 250;

/** The batched socket. */
export class BatchedDatagramSocket implements DatagramSocket {
  readonly kind = "batched" as const;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #sock: UdpSocket;
  #receiving = false;

  constructor(sock: UdpSocket) {
    this.#sock = sock;
    const local = sock.localEndpoint();
    this.localPort = endpointPort(local);
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
        if (!this.#sock.pending && !(await this.#sock.waitReadable(POLL_MS))) continue;
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

  get pending(): boolean {
    return this.#sock.pending;
  }

  get gro(): boolean {
    return this.#sock.gro;
  }

  /** Why UDP_GRO was asked for and is off, else "". */
  get groRefusal(): string {
    return this.#sock.groRefusal;
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
