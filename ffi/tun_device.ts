/**
 * A Linux TUN device (IFF_TUN | IFF_NO_PI: each read/write is one bare IP packet).
 *
 * The read path follows the measured best strategy: the fd is O_NONBLOCK, the loop awaits one
 * `nonblocking: true` FFI poll per wake-up (a thread hop, ~10 µs) and then drains with synchronous reads
 * until EAGAIN. Reads and writes allocate nothing: the caller owns the buffers.
 */
import { EAGAIN, EINTR, errno, ErrnoError, libc } from "./libc.ts";
import { IFR_DATA, ifreq, ifreqName, invalidInterfaceName, view } from "./ifreq.ts";

const TUNSETIFF = 0x400454can;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const IFF_MULTI_QUEUE = 0x0100;
/** TUNSETIFF fails with EBUSY when the name exists: never adopt a device someone else made (and may read). */
const IFF_TUN_EXCL = 0x8000;
/** _IOW('T', 208, unsigned int): the offload flags, passed as the ioctl's value. */
const TUNSETOFFLOAD = 0x400454d0n;
/** _IOW('T', 216, int): the size of the header in front of each packet, through a pointer. */
const TUNSETVNETHDRSZ = 0x400454d8n;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_USO4 = 0x20;
const TUN_F_USO6 = 0x40;
/** sizeof(struct virtio_net_hdr) */
const VNET_HDR_SIZE = 10;
const O_RDWR = 2;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;
const POLLIN = 1;
/**
 * A byte count for a `usize` FFI parameter. Deno accepts a plain number there at run time (no BigInt
 * allocated per packet); only its typings insist on bigint.
 */
const size = (n: number) => n as unknown as bigint;
/** How long one poll waits before re-checking `closed` (also bounds shutdown if the wake-up is lost). */
const POLL_TIMEOUT_MS = 250;

/** `pollWith` bit: the TUN device has a packet to read (or an error a read will report). */
export const READY_TUN = 1;
/** `pollWith` bit: the other descriptor is readable (or in error). */
export const READY_OTHER = 2;

/** What the user can do about a TUNSETIFF failure, by errno name. */
const TUNSETIFF_HINTS: Record<string, string> = {
  EPERM: "creating a TUN device needs root or CAP_NET_ADMIN: run as root, or grant the capability " +
    "(e.g. `setcap cap_net_admin+ep` on the compiled binary)",
  EBUSY:
    "an interface of that name already exists (in use by another process, or left persistent by someone " +
    "whose process could read the tunnel's traffic; vpn never adopts one): stop that process, or delete it " +
    "(ip link delete NAME), or choose another --tun",
  EINVAL: "an interface of that name exists and is not a free TUN device (or the name is invalid)",
};

/** Opening or configuring a TUN device failed; the message says what to do. */
export class TunError extends Error {
  /** errno name ("EPERM", "EBUSY", ...) or "EINVAL" for a name refused before any syscall. */
  readonly code: string;
  /** The requested device name ("" = kernel's choice). */
  readonly device: string;
  constructor(device: string, code: string, detail: string, options?: ErrorOptions) {
    super(`cannot open TUN device ${device === "" ? "(any name)" : `"${device}"`}: ${detail}`, options);
    this.name = "TunError";
    this.code = code;
    this.device = device;
  }
}

/** Options of `TunDevice.open`. */
export interface TunOpenOptions {
  /** Ask for IFF_VNET_HDR and TSO4/TSO6 (and USO where the kernel has it). */
  offload?: boolean;
  /**
   * IFF_MULTI_QUEUE: each open of the same name with the same options attaches one more queue (fd) to the
   * device, and the kernel spreads flows across the queues by flow hash (docs/multicore.md). A device is
   * either multi-queue or not: mixing the two on one name fails with EINVAL.
   */
  multiQueue?: boolean;
  /**
   * Join the existing multi-queue device `name` (one more queue of ours). Without it the name must not exist
   * yet (IFF_TUN_EXCL): a persistent TUN made by another user would otherwise be adopted, and its owner's
   * process would read the tunnel's plaintext.
   */
  attach?: boolean;
}

/**
 * Sets the header size and the widest offload set the kernel takes: TSO with USO, then TSO alone. With
 * IFF_VNET_HDR already on, a refused TUNSETOFFLOAD leaves plain packets behind zero headers.
 */
function enableOffload(fd: number): { vnetHdr: boolean; offloads: string[]; refusal: string } {
  const size = new Uint8Array(new Int32Array([VNET_HDR_SIZE]).buffer);
  if (libc().ioctl(fd, TUNSETVNETHDRSZ, size) < 0) {
    // The device has IFF_VNET_HDR with the default size, which is also 10 bytes.
    return {
      vnetHdr: true,
      offloads: [],
      refusal: new ErrnoError("ioctl(TUNSETVNETHDRSZ)", errno()).message,
    };
  }
  const tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (libc().ioctl_value(fd, TUNSETOFFLOAD, BigInt(tso | TUN_F_USO4 | TUN_F_USO6)) === 0) {
    return { vnetHdr: true, offloads: ["tso", "uso"], refusal: "" };
  }
  const noUso = new ErrnoError("ioctl(TUNSETOFFLOAD, USO)", errno()).message;
  if (libc().ioctl_value(fd, TUNSETOFFLOAD, BigInt(tso)) === 0) {
    return { vnetHdr: true, offloads: ["tso"], refusal: noUso };
  }
  return { vnetHdr: true, offloads: [], refusal: new ErrnoError("ioctl(TUNSETOFFLOAD)", errno()).message };
}

/** An open TUN device. Not thread-safe; one reader loop and any number of synchronous writers. */
export class TunDevice {
  /** The interface name the kernel gave the device (e.g. "tun0" when "" was asked). */
  readonly name: string;
  /** Every read and write carries a 10-byte virtio_net_hdr in front of the packet. */
  readonly vnetHdr: boolean;
  /** Which offloads the kernel took: "tso" (TCP over IPv4 and IPv6), "uso" (UDP), none when empty. */
  readonly offloads: readonly string[];
  /** Why an asked-for offload is off (the kernel refused it), or "" when all are on. */
  readonly offloadRefusal: string;
  #fd: number;
  #wakeFd: number;
  #closed = false;
  #polling = false;
  /** struct pollfd[2] {int fd; short events; short revents}: the TUN fd and the close() wake-up eventfd. */
  readonly #pollfds = new Uint8Array(16);
  readonly #pollView = new DataView(this.#pollfds.buffer);
  /** struct pollfd[3] for `pollWith`: the TUN fd, the wake-up eventfd and the caller's other fd. */
  readonly #pollfds3 = new Uint8Array(24);
  readonly #poll3View = new DataView(this.#pollfds3.buffer);
  readonly #wakeValue = new Uint8Array(new BigUint64Array([1n]).buffer);

  private constructor(
    name: string,
    fd: number,
    wakeFd: number,
    vnetHdr: boolean,
    offloads: readonly string[],
    refusal: string,
  ) {
    this.name = name;
    this.vnetHdr = vnetHdr;
    this.offloads = offloads;
    this.offloadRefusal = refusal;
    this.#fd = fd;
    this.#wakeFd = wakeFd;
    this.#pollView.setInt32(0, fd, true);
    this.#pollView.setInt16(4, POLLIN, true);
    this.#pollView.setInt32(8, wakeFd, true);
    this.#pollView.setInt16(12, POLLIN, true);
    this.#poll3View.setInt32(0, fd, true);
    this.#poll3View.setInt16(4, POLLIN, true);
    this.#poll3View.setInt32(8, wakeFd, true);
    this.#poll3View.setInt16(12, POLLIN, true);
    this.#poll3View.setInt32(16, -1, true);
    this.#poll3View.setInt16(20, POLLIN, true);
  }

  /**
   * Create the TUN device named `name`, which must not exist yet; "" lets the kernel pick `tunN`. With
   * `multiQueue` and `attach`, opening a name that is already open adds a queue to it.
   * Throws `TunError` with a hint for EPERM (needs CAP_NET_ADMIN), EBUSY (name exists) and bad names.
   */
  static open(name: string, opts: TunOpenOptions = {}): TunDevice {
    const why = invalidInterfaceName(name);
    if (why !== null) throw new TunError(name, "EINVAL", `the interface name ${why}`);
    const fd = libc().open(new TextEncoder().encode("/dev/net/tun\0"), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const err = new ErrnoError("open(/dev/net/tun)", errno());
      throw new TunError(name, err.codeName, `${err.message}: is the tun module loaded (modprobe tun)?`, {
        cause: err,
      });
    }
    try {
      const ifr = ifreq(name);
      const offload = opts.offload === true;
      const ifFlags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0) |
        (opts.multiQueue ? IFF_MULTI_QUEUE : 0) | (opts.attach ? 0 : IFF_TUN_EXCL);
      view(ifr).setUint16(IFR_DATA, ifFlags, true);
      if (libc().ioctl(fd, TUNSETIFF, ifr) < 0) {
        const err = new ErrnoError("ioctl(TUNSETIFF)", errno());
        const hint = TUNSETIFF_HINTS[err.codeName]?.replace("NAME", name);
        throw new TunError(name, err.codeName, hint ? `${err.message}: ${hint}` : err.message, {
          cause: err,
        });
      }
      const flags = libc().fcntl(fd, F_GETFL, 0);
      if (flags < 0 || libc().fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        const err = new ErrnoError("fcntl(O_NONBLOCK)", errno());
        throw new TunError(name, err.codeName, err.message, { cause: err });
      }
      const wakeFd = libc().eventfd(0, O_NONBLOCK | O_CLOEXEC);
      if (wakeFd < 0) {
        const err = new ErrnoError("eventfd", errno());
        throw new TunError(name, err.codeName, err.message, { cause: err });
      }
      const granted = offload ? enableOffload(fd) : { vnetHdr: false, offloads: [], refusal: "" };
      return new TunDevice(ifreqName(ifr), fd, wakeFd, granted.vnetHdr, granted.offloads, granted.refusal);
    } catch (e) {
      libc().close(fd);
      throw e;
    }
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves true when a packet is readable, false once the device is closed. One nonblocking FFI poll per
   * wake-up (re-armed every 250 ms); `close()` wakes it at once through an eventfd.
   */
  async waitReadable(): Promise<boolean> {
    let failures = 0;
    while (!this.#closed) {
      this.#polling = true;
      let n: number;
      try {
        n = await libc().poll_async(this.#pollfds, 2n, POLL_TIMEOUT_MS);
      } finally {
        this.#polling = false;
      }
      if (this.#closed) break;
      // poll ran on a worker thread, so errno here is not its errno; it only fails transiently (EINTR,
      // ENOMEM) while both fds are open, so retry a few times before giving up.
      if (n < 0) {
        if (++failures >= 3) throw new Error(`poll on TUN ${this.name} failed ${failures} times in a row`);
        continue;
      }
      failures = 0;
      // revents of the TUN fd: POLLIN, or an error/hangup a read() will report.
      if (n > 0 && this.#pollView.getInt16(6, true) !== 0) return true;
    }
    this.#release();
    return false;
  }

  /**
   * Waits on this thread, at most `timeoutMs` (0 = only look), until the TUN device or `otherFd` (e.g. the
   * UDP socket) is readable. Returns `READY_TUN | READY_OTHER` bits, 0 on timeout, -1 once closed.
   * A synchronous poll is ~0.4 µs against ~18 µs for the worker-thread hop of `pollWithAsync`, so the data
   * path uses it while traffic flows and blocks the event loop for a short `timeoutMs` only.
   */
  pollWith(otherFd: number, timeoutMs: number): number {
    if (this.#closed) return -1;
    this.#poll3View.setInt32(16, otherFd, true);
    const n = libc().poll(this.#pollfds3, 3n, timeoutMs);
    return n > 0 ? this.#readyBits() : 0;
  }

  /**
   * `pollWith` on a worker thread (the event loop keeps running), for idle times; `close()` wakes it.
   * Returns the same bits, 0 on timeout or a transient poll failure, -1 once closed.
   */
  async pollWithAsync(otherFd: number, timeoutMs: number): Promise<number> {
    if (this.#closed) return -1;
    this.#poll3View.setInt32(16, otherFd, true);
    this.#polling = true;
    let n: number;
    try {
      n = await libc().poll_async(this.#pollfds3, 3n, timeoutMs);
    } finally {
      this.#polling = false;
    }
    if (this.#closed) {
      this.#release();
      return -1;
    }
    return n > 0 ? this.#readyBits() : 0;
  }

  #readyBits(): number {
    const v = this.#poll3View;
    return (v.getInt16(6, true) !== 0 ? READY_TUN : 0) | (v.getInt16(22, true) !== 0 ? READY_OTHER : 0);
  }

  /** Read one packet into `buf`; returns its length, or 0 when none is pending (EAGAIN) or closed. */
  read(buf: Uint8Array): number {
    if (this.#closed) return 0;
    const n = Number(libc().read(this.#fd, buf, size(buf.byteLength)));
    if (n >= 0) return n;
    const code = errno();
    if (code === EAGAIN || code === EINTR) return 0;
    throw new ErrnoError(`read(${this.name})`, code);
  }

  /** Write `buf[0..len)` as one packet; false if the kernel refused it (device down, bad packet, full). */
  write(buf: Uint8Array, len: number): boolean {
    if (this.#closed || len > buf.byteLength) return false; // never let the kernel read past `buf`
    return Number(libc().write(this.#fd, buf, size(len))) === len;
  }

  /** Close the device (the kernel removes a non-persistent TUN) and wake a pending `waitReadable`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().close(this.#fd); // a poll in flight holds its own file reference; the device goes when it returns
    if (this.#polling) {
      libc().write(this.#wakeFd, this.#wakeValue, 8n); // eventfd closed by waitReadable after the poll returns
    } else {
      this.#release();
    }
  }

  #release(): void {
    if (this.#wakeFd >= 0) {
      libc().close(this.#wakeFd);
      this.#wakeFd = -1;
    }
  }
}
