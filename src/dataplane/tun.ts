/**
 * The TUN contract of the data path: a device that hands over one bare IP packet per read and takes one
 * per write, optionally behind a virtio_net_hdr (offloads). `ffi/tun_device.ts`'s `TunDevice` satisfies it (and `PollableTun`); tests use an in-memory one.
 */

/** A TUN device as the packet loops use it. Reads and writes use the caller's buffers. */
export interface Tun {
  /** The interface name. */
  readonly name: string;
  /**
   * The offload capability: when true, every read returns and every write takes a 10-byte virtio_net_hdr
   * in front of the packet, and a read may return a GSO super-packet of up to 64 KiB (reads then need a
   * buffer of 65535 + 10 bytes). Absent or false: bare packets.
   */
  readonly vnetHdr?: boolean;
  /** Reads one packet into `buf`; returns its length, or 0 when none is pending or the device is closed. */
  read(buf: Uint8Array): number;
  /** Writes `buf[0, len)` as one packet; false if it was refused. */
  write(buf: Uint8Array, len: number): boolean;
  /** Resolves true when a packet is readable, false once the device is closed. */
  waitReadable(): Promise<boolean>;
  /** Closes the device and wakes a pending wait. */
  close(): void;
}

/** `PollableTun.pollWith` bit: the TUN device has a packet to read (same value as `ffi/tun_device.ts`). */
export const READY_TUN = 1;
/** `PollableTun.pollWith` bit: the other descriptor is readable (same value as `ffi/tun_device.ts`). */
export const READY_OTHER = 2;

/** A TUN device that can wait on itself and one other file descriptor (the UDP socket) at once. */
export interface PollableTun extends Tun {
  /** Waits on this thread up to `timeoutMs`: READY_* bits, 0 on timeout, -1 once closed. */
  pollWith(otherFd: number, timeoutMs: number): number;
  /** `pollWith` on a worker thread, for idle times. */
  pollWithAsync(otherFd: number, timeoutMs: number): Promise<number>;
}

/** True when `tun` can serve the one-loop path over a pollable socket. */
export function isPollable(tun: Tun): tun is PollableTun {
  return typeof (tun as PollableTun).pollWith === "function";
}
