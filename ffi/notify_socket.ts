/**
 * One datagram to a Unix datagram socket by path (systemd's `NOTIFY_SOCKET`, sd_notify(3)): Deno's own
 * Unix datagram API must bind a path of its own first, and cannot reach abstract (`@name`) sockets.
 * Holds the `sockaddr_un` layout (Linux).
 */
import { lastError, libc } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** struct sockaddr_un: sa_family_t (2 bytes) + char sun_path[108]. */
const SUN_PATH_OFFSET = 2;
const SUN_PATH_MAX = 108;

/**
 * Send `message` as one datagram to the socket at `path`; a leading `@` names an abstract socket.
 * Throws an ErrnoError when the socket cannot be reached, and a RangeError for a path that does not fit.
 */
export function sendUnixDatagram(path: string, message: string): void {
  const name = new TextEncoder().encode(path);
  const abstract = name[0] === 0x40; // '@'
  // A filesystem path needs its terminating NUL inside sun_path; an abstract name does not.
  if (name.length === 0 || name.length > (abstract ? SUN_PATH_MAX : SUN_PATH_MAX - 1)) {
    throw new RangeError(`socket path of ${name.length} bytes; allowed: 1 to ${SUN_PATH_MAX - 1}`);
  }
  const addr = new Uint8Array(SUN_PATH_OFFSET + SUN_PATH_MAX);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, SUN_PATH_OFFSET);
  if (abstract) addr[SUN_PATH_OFFSET] = 0;
  const addrLen = SUN_PATH_OFFSET + name.length + (abstract ? 0 : 1);
  const fd = libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw lastError("socket(AF_UNIX)");
  try {
    const data = new TextEncoder().encode(message);
    if (libc().sendto(fd, data, BigInt(data.length), MSG_NOSIGNAL, addr, addrLen) < 0) {
      throw lastError("sendto", path);
    }
  } finally {
    libc().close(fd);
  }
}
