/**
 * A UDP socket through libc: non-blocking fd, `poll` (async FFI) to wait, `recvmmsg`/`sendmmsg` (sync FFI)
 * to move whole batches per system call. Holds the sockaddr/msghdr/iovec layouts (Linux, LP64).
 * Endpoints cross this boundary as 18 bytes (16-byte IPv6 or v4-mapped address + big-endian port).
 */
import { EAGAIN, EINTR, errno, ErrnoError, lastError, libc } from "./libc.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const POLLIN = 1;
const SHUT_RDWR = 2;
const ENOBUFS = 105;
/** The kernel handles at most UIO_MAXIOV messages per recvmmsg/sendmmsg. */
const MAX_VLEN = 1024;
// UDP generic segmentation offload: one message carries up to GSO_MAX_SEGMENTS datagrams of gso_size bytes
// (the last may be shorter), passed as a cmsg {SOL_UDP, UDP_SEGMENT, u16}; the stack is walked once per
// message instead of once per datagram.
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const GSO_MAX_SEGMENTS = 64;
/** Payload bytes of one GSO message; below 65507 (IPv4) and 65527 (IPv6). */
const GSO_MAX_BYTES = 65000;
/** CMSG_SPACE(sizeof(u16)): cmsghdr {size_t len; int level; int type} + data, padded to 8. */
const CMSG_SPACE_U16 = 24;
const CMSG_LEN_U16 = 18;
// UDP generic receive offload: one message returns a train of same-size datagrams from one source, the
// size in a cmsg {SOL_UDP, UDP_GRO, int}; the kernel keeps a sender's GSO message whole instead of
// splitting it. Needs receive buffers of 64 KiB per message.
const UDP_GRO = 104;
/** CMSG_SPACE(sizeof(int)) */
const CMSG_SPACE_INT = 24;
/**
 * Messages (trains or single datagrams) taken per recvmmsg; they land in the batch's top slots and are cut
 * into the slots below. Traffic not sent with GSO comes one datagram per message: with 8 per call, UDP
 * 1300 B through the tunnel fell to 205 Mbit/s against 323 without offloads; with 32, 305-318 against
 * 339-345 (tunnel-bench, alternating runs). 32 still leaves 96 slots of a 128-slot batch to cut into.
 */
const GRO_TRAINS = 32;
/** Smallest batch slot that holds a whole train. */
const GRO_SLOT_MIN = 65535;
const EINVAL = 22;
const EIO = 5;
const EMSGSIZE = 90;

// struct mmsghdr = struct msghdr (56 bytes) + unsigned msg_len, padded to 64.
const MMSG_SIZE = 64;
const MMSG_U32 = MMSG_SIZE / 4;
const OFF_NAME = 0; // void *msg_name
const OFF_NAMELEN_U32 = 2; // socklen_t msg_namelen (byte 8)
const OFF_IOV = 16; // struct iovec *msg_iov
const OFF_IOVLEN = 24; // size_t msg_iovlen
const OFF_CONTROL = 32; // void *msg_control
const OFF_CONTROLLEN = 40; // size_t msg_controllen
const OFF_FLAGS_U32 = 12; // int msg_flags (byte 48)
const OFF_LEN_U32 = 14; // unsigned msg_len (byte 56)
// struct iovec { void *iov_base; size_t iov_len; } = 16 bytes.
const IOV_U32 = 4;
// One sockaddr_in6 (28 bytes) per slot, 32-byte stride; a sockaddr_in (16 bytes) fits the same slot.
const NAME_STRIDE = 32;
const SOCKADDR_IN6_LEN = 28;
const SOCKADDR_IN_LEN = 16;
const ENDPOINT_BYTES = 18;

/** What the socket needs from a batch: contiguous slot data, lengths, and 18-byte endpoints per slot. */
export interface BatchMemory {
  readonly capacity: number;
  readonly slotSize: number;
  /** `capacity * slotSize` bytes; slot i starts at `i * slotSize`. */
  readonly data: Uint8Array;
  readonly lens: Int32Array;
  /** `capacity * 18` bytes; slot i's endpoint starts at `i * 18`. */
  readonly endpointData: Uint8Array;
}

/** Precomputed mmsghdr/iovec/sockaddr arrays for one batch; built once, reused by every call. */
interface MsgVec {
  hdr: Uint8Array;
  hdr32: Uint32Array;
  iov32: Uint32Array;
  names: Uint8Array;
  keep: BigUint64Array;
  /** GSO send: its own mmsghdr array (message j uses name slot j and control slot j), built once. */
  ghdr: Uint8Array;
  ghdr32: Uint32Array;
  ctrl: Uint8Array;
  /** Address of iov[0], as a number, to point a message at iov[i] without a BigInt per message. */
  iovAt: number;
  /** GRO receive: GRO_TRAINS mmsghdrs onto the top slots, each with a control buffer; built when first used. */
  rhdr?: Uint8Array;
  rhdr32?: Uint32Array;
  rctrl?: Uint8Array;
  rctrl32?: Int32Array;
}

const msgVecs = new WeakMap<BatchMemory, MsgVec>();

function address(buf: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
}

function msgVecFor(b: BatchMemory): MsgVec {
  let v = msgVecs.get(b);
  if (v) return v;
  const n = b.capacity;
  const hdr = new Uint8Array(n * MMSG_SIZE);
  const iov = new BigUint64Array(n * 2);
  const names = new Uint8Array(n * NAME_STRIDE);
  const hdr64 = new BigUint64Array(hdr.buffer);
  const dataAt = address(b.data), iovAt = address(iov), namesAt = address(names);
  for (let i = 0; i < n; i++) {
    iov[i * 2] = dataAt + BigInt(i * b.slotSize);
    iov[i * 2 + 1] = BigInt(b.slotSize);
    hdr64[(i * MMSG_SIZE + OFF_NAME) / 8] = namesAt + BigInt(i * NAME_STRIDE);
    hdr64[(i * MMSG_SIZE + OFF_IOV) / 8] = iovAt + BigInt(i * 16);
    hdr64[(i * MMSG_SIZE + OFF_IOVLEN) / 8] = 1n;
  }
  const ghdr = new Uint8Array(n * MMSG_SIZE);
  const ghdr64 = new BigUint64Array(ghdr.buffer);
  const ctrl = new Uint8Array(n * CMSG_SPACE_U16);
  const ctrlView = new DataView(ctrl.buffer);
  const ctrlAt = address(ctrl);
  for (let i = 0; i < n; i++) {
    ghdr64[(i * MMSG_SIZE + OFF_NAME) / 8] = namesAt + BigInt(i * NAME_STRIDE);
    ghdr64[(i * MMSG_SIZE + OFF_CONTROL) / 8] = ctrlAt + BigInt(i * CMSG_SPACE_U16);
    ctrlView.setBigUint64(i * CMSG_SPACE_U16, BigInt(CMSG_LEN_U16), true);
    ctrlView.setInt32(i * CMSG_SPACE_U16 + 8, SOL_UDP, true);
    ctrlView.setInt32(i * CMSG_SPACE_U16 + 12, UDP_SEGMENT, true);
  }
  v = {
    hdr,
    hdr32: new Uint32Array(hdr.buffer),
    iov32: new Uint32Array(iov.buffer),
    names,
    keep: iov,
    ghdr,
    ghdr32: new Uint32Array(ghdr.buffer),
    ctrl,
    iovAt: Number(iovAt),
  };
  msgVecs.set(b, v);
  return v;
}

/** The GRO receive headers of `v`: message t reads into slot `base + t` and its own name and control slot. */
function groHeaders(v: MsgVec, base: number): void {
  const rhdr = new Uint8Array(GRO_TRAINS * MMSG_SIZE);
  const rctrl = new Uint8Array(GRO_TRAINS * CMSG_SPACE_INT);
  const h64 = new BigUint64Array(rhdr.buffer);
  const iovAt = BigInt(v.iovAt), namesAt = address(v.names), ctrlAt = address(rctrl);
  for (let t = 0; t < GRO_TRAINS; t++) {
    h64[(t * MMSG_SIZE + OFF_NAME) / 8] = namesAt + BigInt((base + t) * NAME_STRIDE);
    h64[(t * MMSG_SIZE + OFF_IOV) / 8] = iovAt + BigInt((base + t) * 16);
    h64[(t * MMSG_SIZE + OFF_IOVLEN) / 8] = 1n;
    h64[(t * MMSG_SIZE + OFF_CONTROL) / 8] = ctrlAt + BigInt(t * CMSG_SPACE_INT);
  }
  v.rhdr = rhdr;
  v.rhdr32 = new Uint32Array(rhdr.buffer);
  v.rctrl = rctrl;
  v.rctrl32 = new Int32Array(rctrl.buffer);
}

/** Writes endpoint `ep[at..at+18)` as a sockaddr for a socket of `family` into `names[o..)`; returns its length. */
function writeSockaddr(family: 4 | 6, ep: Uint8Array, at: number, names: Uint8Array, o: number): number {
  let mapped = true;
  for (let k = 0; k < 10; k++) if (ep[at + k] !== 0) mapped = false;
  if (ep[at + 10] !== 0xff || ep[at + 11] !== 0xff) mapped = false;
  names[o + 2] = ep[at + 16];
  names[o + 3] = ep[at + 17];
  if (family === 4 && mapped) {
    names[o] = AF_INET;
    names[o + 1] = 0;
    for (let k = 0; k < 4; k++) names[o + 4 + k] = ep[at + 12 + k];
    for (let k = 8; k < 16; k++) names[o + k] = 0;
    return SOCKADDR_IN_LEN;
  }
  // IPv6 sockets take v4-mapped destinations as they are (dual-stack). On an IPv4 socket an IPv6
  // destination stays AF_INET6 and the kernel refuses that one message (EAFNOSUPPORT).
  names[o] = AF_INET6;
  names[o + 1] = 0;
  for (let k = 4; k < 8; k++) names[o + k] = 0;
  for (let k = 0; k < 16; k++) names[o + 8 + k] = ep[at + k];
  for (let k = 24; k < 28; k++) names[o + k] = 0;
  return SOCKADDR_IN6_LEN;
}

/** Reads a sockaddr from `names[o..)` into endpoint `ep[at..at+18)`; false for an unknown family. */
function readSockaddr(names: Uint8Array, o: number, ep: Uint8Array, at: number): boolean {
  const fam = names[o] | (names[o + 1] << 8);
  if (fam === AF_INET6) {
    for (let k = 0; k < 16; k++) ep[at + k] = names[o + 8 + k];
  } else if (fam === AF_INET) {
    for (let k = 0; k < 10; k++) ep[at + k] = 0;
    ep[at + 10] = 0xff;
    ep[at + 11] = 0xff;
    for (let k = 0; k < 4; k++) ep[at + 12 + k] = names[o + 4 + k];
  } else {
    return false;
  }
  ep[at + 16] = names[o + 2];
  ep[at + 17] = names[o + 3];
  return true;
}

function setIntOpt(fd: number, level: number, name: number, value: number): boolean {
  return libc().setsockopt(fd, level, name, new Uint8Array(new Int32Array([value]).buffer), 4) === 0;
}

function getIntOpt(fd: number, level: number, name: number): number {
  const v = new Int32Array(1), len = new Uint32Array([4]);
  return libc().getsockopt(fd, level, name, new Uint8Array(v.buffer), new Uint8Array(len.buffer)) === 0
    ? v[0]
    : -1;
}

/** Options for `UdpSocket.open`. */
export interface UdpOpenOptions {
  /** Requested SO_RCVBUF/SO_SNDBUF in bytes (forced past rmem_max/wmem_max when running as root). */
  bufferBytes?: number;
  /**
   * Ask for UDP_GRO. Only for callers whose batches have slots of at least 65535 bytes: a train received
   * into a smaller slot would be cut short.
   */
  gro?: boolean;
}

/** A non-blocking libc UDP socket. Not safe for two concurrent `waitReadable` calls. */
export class UdpSocket {
  /** 4 for AF_INET, 6 for AF_INET6 (dual-stack). */
  readonly family: 4 | 6;
  /** Datagrams dropped on receive because they did not fit a slot. */
  truncated = 0;
  /** Datagrams the kernel refused on send (unreachable, wrong family...). */
  sendErrors = 0;
  #fd: number;
  #polling = false;
  #closed = false;
  readonly #pfd = new Uint8Array(8);
  readonly #name = new Uint8Array(NAME_STRIDE);
  /** UDP GSO in use; switched off for good when the kernel refuses it. */
  #gso = true;
  readonly #gsoFirst = new Int32Array(MAX_VLEN);
  readonly #gsoSegs = new Int32Array(MAX_VLEN);
  /** UDP_GRO is on: `receiveBatch` cuts trains into slots. */
  readonly gro: boolean;
  /** Why UDP_GRO was asked for and is off (the kernel refused it), else "". */
  readonly groRefusal: string;
  // Trains received and not yet cut into slots: lengths, segment sizes, bytes already taken.
  readonly #trainLen = new Int32Array(GRO_TRAINS);
  readonly #trainSeg = new Int32Array(GRO_TRAINS);
  readonly #trainTaken = new Int32Array(GRO_TRAINS);
  readonly #trainEp = new Uint8Array(GRO_TRAINS * ENDPOINT_BYTES);
  #trains = 0;
  #trainNext = 0;

  private constructor(fd: number, family: 4 | 6, gro: boolean, groRefusal: string) {
    this.#fd = fd;
    this.family = family;
    this.gro = gro;
    this.groRefusal = groRefusal;
    new DataView(this.#pfd.buffer).setInt32(0, fd, true);
    this.#pfd[4] = POLLIN;
  }

  /**
   * Creates a socket of `family` and binds it to `bindEndpoint` (18 bytes; IPv4 as v4-mapped).
   * IPv6 sockets are dual-stack (IPV6_V6ONLY=0). Throws `ErrnoError` from `socket` or `bind`.
   */
  static open(family: 4 | 6, bindEndpoint: Uint8Array, opts: UdpOpenOptions = {}): UdpSocket {
    const fd = libc().socket(family === 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw lastError("socket");
    if (family === 6) setIntOpt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    const want = opts.bufferBytes ?? 4 << 20;
    // FORCE variants pass the sysctl caps when we have CAP_NET_ADMIN; otherwise take what the cap allows.
    if (!setIntOpt(fd, SOL_SOCKET, SO_RCVBUFFORCE, want)) setIntOpt(fd, SOL_SOCKET, SO_RCVBUF, want);
    if (!setIntOpt(fd, SOL_SOCKET, SO_SNDBUFFORCE, want)) setIntOpt(fd, SOL_SOCKET, SO_SNDBUF, want);
    const sa = new Uint8Array(NAME_STRIDE);
    const len = writeSockaddr(family, bindEndpoint, 0, sa, 0);
    if (libc().bind(fd, sa, len) !== 0) {
      const err = lastError("bind");
      libc().close(fd);
      throw err;
    }
    let gro = false, groRefusal = "";
    if (opts.gro === true) {
      gro = setIntOpt(fd, SOL_UDP, UDP_GRO, 1);
      if (!gro) groRefusal = new ErrnoError("setsockopt(UDP_GRO)", errno()).message;
    }
    return new UdpSocket(fd, family, gro, groRefusal);
  }

  /** The bound address as an 18-byte endpoint (getsockname). */
  localEndpoint(): Uint8Array {
    const sa = new Uint8Array(NAME_STRIDE), len = new Uint32Array([NAME_STRIDE]);
    if (libc().getsockname(this.#fd, sa, new Uint8Array(len.buffer)) !== 0) throw lastError("getsockname");
    const ep = new Uint8Array(ENDPOINT_BYTES);
    readSockaddr(sa, 0, ep, 0);
    return ep;
  }

  /** Effective kernel buffer sizes in bytes (the kernel reports twice the requested value). */
  bufferSizes(): { receive: number; send: number } {
    return {
      receive: getIntOpt(this.#fd, SOL_SOCKET, SO_RCVBUF),
      send: getIntOpt(this.#fd, SOL_SOCKET, SO_SNDBUF),
    };
  }

  /** The descriptor, for polling it together with another one (-1 once released). */
  get fd(): number {
    return this.#fd;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Waits (on a worker thread) until the socket is readable or `timeoutMs` passes. Returns true when
   * readable; false on timeout or once closed. `close()` wakes a pending wait at once.
   */
  async waitReadable(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    this.#polling = true;
    let r: number;
    try {
      r = await libc().poll_async(this.#pfd, 1n, timeoutMs);
    } finally {
      this.#polling = false;
    }
    if (this.#closed) {
      // close() only shut the socket down while the poll held the fd; release the fd now.
      this.#release();
      return false;
    }
    return r > 0;
  }

  /**
   * Receives up to `b.capacity` datagrams without blocking into slots [0, n) and returns n (0 if none
   * waiting). Datagrams larger than a slot are dropped and counted in `truncated`.
   */
  receiveBatch(b: BatchMemory): number {
    if (this.#closed) return 0;
    if (this.gro && b.slotSize >= GRO_SLOT_MIN && b.capacity > 2 * GRO_TRAINS) return this.#receiveGro(b);
    const v = msgVecFor(b);
    const max = Math.min(b.capacity, MAX_VLEN);
    const hdr32 = v.hdr32, iov32 = v.iov32, names = v.names, eps = b.endpointData, lens = b.lens;
    for (let i = 0; i < max; i++) {
      hdr32[i * MMSG_U32 + OFF_NAMELEN_U32] = SOCKADDR_IN6_LEN;
      iov32[i * IOV_U32 + 2] = b.slotSize;
    }
    let k: number;
    do {
      k = libc().recvmmsg(this.#fd, v.hdr, max, MSG_DONTWAIT, null);
    } while (k < 0 && errno() === EINTR);
    if (k <= 0) return 0;
    let w = 0;
    for (let i = 0; i < k; i++) {
      const h = i * MMSG_U32;
      if ((hdr32[h + OFF_FLAGS_U32] & MSG_TRUNC) !== 0) {
        this.truncated++;
        continue;
      }
      const len = hdr32[h + OFF_LEN_U32];
      if (!readSockaddr(names, i * NAME_STRIDE, eps, w * ENDPOINT_BYTES)) continue;
      if (w !== i) b.data.copyWithin(w * b.slotSize, i * b.slotSize, i * b.slotSize + len);
      lens[w++] = len;
    }
    return w;
  }

  /** Datagrams of received trains still waiting to be cut into slots by the next `receiveBatch`. */
  get pending(): boolean {
    return this.#trainNext < this.#trains;
  }

  /**
   * `receiveBatch` with UDP_GRO: up to GRO_TRAINS trains are received into the top slots of the batch and
   * cut, datagram by datagram, into the slots below (copyWithin: no allocation). What does not fit waits in
   * the top slots for the next call (`pending`), which takes it before receiving more.
   */
  #receiveGro(b: BatchMemory): number {
    const cap = Math.min(b.capacity, MAX_VLEN), base = cap - GRO_TRAINS;
    const w = this.#cut(b, 0, base);
    if (w >= base || this.pending) return w;
    const v = msgVecFor(b);
    if (v.rhdr === undefined) groHeaders(v, base);
    const hdr32 = v.rhdr32!, iov32 = v.iov32, ctrl32 = v.rctrl32!;
    for (let t = 0; t < GRO_TRAINS; t++) {
      hdr32[t * MMSG_U32 + OFF_NAMELEN_U32] = SOCKADDR_IN6_LEN;
      hdr32[t * MMSG_U32 + OFF_CONTROLLEN / 4] = CMSG_SPACE_INT;
      hdr32[t * MMSG_U32 + OFF_CONTROLLEN / 4 + 1] = 0;
      iov32[(base + t) * IOV_U32 + 2] = b.slotSize;
    }
    let k: number;
    do {
      k = libc().recvmmsg(this.#fd, v.rhdr!, GRO_TRAINS, MSG_DONTWAIT, null);
    } while (k < 0 && errno() === EINTR);
    if (k <= 0) return w;
    let n = 0;
    for (let t = 0; t < k; t++) {
      const h = t * MMSG_U32, len = hdr32[h + OFF_LEN_U32];
      if ((hdr32[h + OFF_FLAGS_U32] & MSG_TRUNC) !== 0) {
        this.truncated++;
        continue;
      }
      if (len === 0 || !readSockaddr(v.names, (base + t) * NAME_STRIDE, this.#trainEp, n * ENDPOINT_BYTES)) {
        continue;
      }
      // cmsghdr {u64 len; i32 level; i32 type} then the segment size; absent for a single datagram.
      const c = t * (CMSG_SPACE_INT / 4);
      const hasSeg = hdr32[h + OFF_CONTROLLEN / 4] >= 20 && ctrl32[c + 2] === SOL_UDP &&
        ctrl32[c + 3] === UDP_GRO;
      const seg = hasSeg ? ctrl32[c + 4] : len;
      if (n !== t) {
        b.data.copyWithin((base + n) * b.slotSize, (base + t) * b.slotSize, (base + t) * b.slotSize + len);
      }
      this.#trainLen[n] = len;
      this.#trainSeg[n] = seg > 0 && seg < len ? seg : len;
      this.#trainTaken[n] = 0;
      n++;
    }
    this.#trains = n;
    this.#trainNext = 0;
    return this.#cut(b, w, base);
  }

  /** Cuts waiting trains (in slots `base`..) into slots from `w` up to `base`; returns the next free slot. */
  #cut(b: BatchMemory, w: number, base: number): number {
    const eps = b.endpointData, tEp = this.#trainEp, size = b.slotSize;
    while (this.#trainNext < this.#trains && w < base) {
      const t = this.#trainNext, len = this.#trainLen[t], taken = this.#trainTaken[t];
      const seg = Math.min(this.#trainSeg[t], len - taken), from = (base + t) * size + taken;
      b.data.copyWithin(w * size, from, from + seg);
      b.lens[w] = seg;
      for (let e = 0; e < ENDPOINT_BYTES; e++) eps[w * ENDPOINT_BYTES + e] = tEp[t * ENDPOINT_BYTES + e];
      w++;
      if (taken + seg >= len) this.#trainNext++;
      else this.#trainTaken[t] = taken + seg;
    }
    return w;
  }

  /**
   * Sends slots [0, count) each to its endpoint with as few `sendmmsg` calls as possible; runs of datagrams
   * to one endpoint with one length (the last may be shorter) go as one GSO message each. Stops at a full
   * socket buffer (EAGAIN/ENOBUFS) and skips datagrams the kernel refuses. Returns how many were sent.
   */
  sendBatch(b: BatchMemory, count: number): number {
    if (this.#closed || count <= 0) return 0;
    if (count > b.capacity) count = b.capacity;
    if (this.#gso && count > 1) {
      const sent = this.#sendGso(b, count);
      if (sent >= 0) return sent;
    }
    return this.#sendPlain(b, count, 0);
  }

  /** GSO send of slots [0, count); -1 when the kernel refused GSO itself (then it stays off for this socket). */
  #sendGso(b: BatchMemory, count: number): number {
    const v = msgVecFor(b);
    const hdr32 = v.ghdr32, iov32 = v.iov32, names = v.names, ctrl = v.ctrl;
    const eps = b.endpointData, lens = b.lens;
    // Group slots into messages: message m covers slots [first[m], first[m] + segs[m]).
    const first = this.#gsoFirst, segs = this.#gsoSegs;
    let m = 0;
    for (let i = 0; i < count;) {
      const size = lens[i], at = i * ENDPOINT_BYTES;
      iov32[i * IOV_U32 + 2] = size;
      let k = 1, bytes = size;
      while (i + k < count && k < GSO_MAX_SEGMENTS) {
        const len = lens[i + k];
        if (len > size || bytes + len > GSO_MAX_BYTES) break;
        const o = (i + k) * ENDPOINT_BYTES;
        let same = true;
        for (let e = 0; e < ENDPOINT_BYTES; e++) {
          if (eps[o + e] !== eps[at + e]) {
            same = false;
            break;
          }
        }
        if (!same) break;
        iov32[(i + k) * IOV_U32 + 2] = len;
        bytes += len;
        k++;
        if (len < size) break; // a shorter datagram ends the message
      }
      const h = m * MMSG_U32;
      hdr32[h + OFF_NAMELEN_U32] = writeSockaddr(this.family, eps, at, names, m * NAME_STRIDE);
      const iovAddr = v.iovAt + i * 16;
      hdr32[h + OFF_IOV / 4] = iovAddr % 0x100000000;
      hdr32[h + OFF_IOV / 4 + 1] = Math.floor(iovAddr / 0x100000000);
      hdr32[h + OFF_IOVLEN / 4] = k;
      hdr32[h + OFF_CONTROLLEN / 4] = k > 1 ? CMSG_SPACE_U16 : 0;
      if (k > 1) {
        ctrl[m * CMSG_SPACE_U16 + 16] = size & 0xff;
        ctrl[m * CMSG_SPACE_U16 + 17] = size >> 8;
      }
      first[m] = i;
      segs[m] = k;
      m++;
      i += k;
    }
    let done = 0, sent = 0;
    while (done < m) {
      const from = done === 0 ? v.ghdr : v.ghdr.subarray(done * MMSG_SIZE);
      const r = libc().sendmmsg(this.#fd, from, m - done, 0);
      if (r > 0) {
        for (let j = done; j < done + r; j++) sent += segs[j];
        done += r;
        continue;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN || e === ENOBUFS) break;
      if (segs[done] > 1 && (e === EINVAL || e === EIO || e === EMSGSIZE)) {
        // No GSO on this path: send the rest one by one from now on.
        this.#gso = false;
        return sent + this.#sendPlain(b, count, first[done]);
      }
      this.sendErrors += segs[done];
      done++;
    }
    return sent;
  }

  /** Sends slots [start, count) one datagram per message. */
  #sendPlain(b: BatchMemory, count: number, start: number): number {
    const v = msgVecFor(b);
    const hdr32 = v.hdr32, iov32 = v.iov32, names = v.names, eps = b.endpointData, lens = b.lens;
    for (let i = start; i < count; i++) {
      iov32[i * IOV_U32 + 2] = lens[i];
      hdr32[i * MMSG_U32 + OFF_NAMELEN_U32] = writeSockaddr(
        this.family,
        eps,
        i * ENDPOINT_BYTES,
        names,
        i * NAME_STRIDE,
      );
    }
    let done = start, sent = 0;
    while (done < count) {
      const chunk = Math.min(count - done, MAX_VLEN);
      // A view past the first header only after a partial send (rare), so no allocation normally.
      const from = done === 0 ? v.hdr : v.hdr.subarray(done * MMSG_SIZE);
      const r = libc().sendmmsg(this.#fd, from, chunk, 0);
      if (r > 0) {
        done += r;
        sent += r;
        continue;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN || e === ENOBUFS) break;
      // The message at `done` was refused (e.g. EAFNOSUPPORT, ENETUNREACH): drop it, send the rest.
      this.sendErrors++;
      done++;
    }
    return sent;
  }

  /** Sends one datagram `buf[0, len)` to `endpoint` (one sendto, no copy). Returns 1 if sent, else 0. */
  sendOne(buf: Uint8Array, len: number, endpoint: Uint8Array): number {
    if (this.#closed) return 0;
    const n = writeSockaddr(this.family, endpoint, 0, this.#name, 0);
    const r = Number(libc().sendto(this.#fd, buf, BigInt(len), 0, this.#name, n));
    if (r >= 0) return 1;
    const e = errno();
    if (e !== EAGAIN && e !== ENOBUFS) {
      this.sendErrors++;
    }
    return 0;
  }

  /**
   * Closes the socket. A pending `waitReadable` is woken at once (shutdown) and the fd is released when
   * it returns, so the fd number cannot be reused under a poll still running on a worker thread.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#polling) libc().shutdown(this.#fd, SHUT_RDWR);
    else this.#release();
  }

  #release(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }
}

/** Opens libc now: throws (no --allow-ffi, no libc) before anything is bound, so a caller can fall back. */
export function loadUdp(): void {
  libc();
}

/** The errno name of a failed socket call, e.g. "EADDRINUSE", or null when `e` is no such error. */
export function socketErrorCode(e: unknown): { call: string; code: number; name: string } | null {
  return e instanceof ErrnoError ? { call: e.call, code: e.code, name: e.codeName } : null;
}
