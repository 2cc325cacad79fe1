/**
 * The project's one binding to libc. Every other file in `ffi/` calls through `libc`;
 * nothing outside `ffi/` sees a pointer.
 *
 * Calls marked `_async` run on a worker thread (`nonblocking: true`) and cost ~10 µs each,
 * so the data path uses them only to wait (`poll`) and does its reads and writes synchronously.
 *
 * The library is opened on the first `libc()` call, not at import: importing this file needs no
 * --allow-ffi, so commands that never touch a device (genkey, status, config checks) run without it.
 */
const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** ioctl whose argument is a value, not a pointer (TUNSETOFFLOAD). */
  ioctl_value: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  poll_async: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "isize" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
} as const;

/** The bound libc calls. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let symbols: Libc | null = null;

/** libc, opened on first use (throws Deno's permission error without --allow-ffi). */
export function libc(): Libc {
  return symbols ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
}

/** errno names for the codes the project reports or branches on. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  6: "ENXIO",
  9: "EBADF",
  11: "EAGAIN",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  90: "EMSGSIZE",
  93: "EPROTONOSUPPORT",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
};

export const EAGAIN = 11;
export const EINTR = 4;
export const EPERM = 1;

/** The calling thread's errno right after a failed libc call. */
export function errno(): number {
  return new Deno.UnsafePointerView(libc().__errno_location()!).getInt32();
}

/** A failed libc call: names the call, the errno and libc's text for it. */
export class ErrnoError extends Error {
  readonly call: string;
  readonly code: number;
  readonly codeName: string;
  constructor(call: string, code: number, hint?: string) {
    const name = ERRNO_NAMES[code] ?? `errno ${code}`;
    const text = strerror(code);
    super(`${call} failed: ${name} (${text})${hint ? `: ${hint}` : ""}`);
    this.name = "ErrnoError";
    this.call = call;
    this.code = code;
    this.codeName = name;
  }
}

/** Build an `ErrnoError` from the current errno. */
export function lastError(call: string, hint?: string): ErrnoError {
  return new ErrnoError(call, errno(), hint);
}

function strerror(code: number): string {
  const p = libc().strerror(code);
  return p ? new Deno.UnsafePointerView(p).getCString() : `errno ${code}`;
}
