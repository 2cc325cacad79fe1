/**
 * Packet capture inside a test host, so a test can prove what does (or does not) cross the wire.
 * Uses tcpdump when installed, else a python3 AF_PACKET socket (which ignores the filter).
 */
import type { HostProcess, SpawnHost } from "./process.ts";

/** Which capture program to use: "auto" picks tcpdump if it is installed, else python. */
export type CaptureTool = "auto" | "tcpdump" | "python";

/** Raised when no capture program is available or it fails to start. */
export class CaptureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaptureError";
  }
}

// Raw frames from every interface (ETH_P_ALL = 3), each appended to the file as it arrives.
const PY_CAPTURE = `
import socket, struct, sys, signal
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
if len(sys.argv) > 2:
    s.bind((sys.argv[2], 0))
# SO_RCVBUFFORCE (33): as root, past net.core.rmem_max, so bursts are not dropped
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)
s.settimeout(0.05)
out = open(sys.argv[1], "wb")
done = []
signal.signal(signal.SIGTERM, lambda *a: done.append(1))
print("listening (python AF_PACKET)", flush=True)
while not done:
    try:
        frame = s.recv(262144)
    except (socket.timeout, InterruptedError):
        continue
    out.write(frame)
    out.flush()
# Frames already queued when we were told to stop still count.
s.setblocking(False)
while True:
    try:
        out.write(s.recv(262144))
    except (BlockingIOError, InterruptedError):
        break
out.close()
# PACKET_STATISTICS (SOL_PACKET 263, option 6): struct tpacket_stats { u32 packets, drops }
packets, drops = struct.unpack("II", s.getsockopt(263, 6, 8))
print(f"{drops} packets dropped by kernel", flush=True)
`;

let tcpdumpPath: string | null | undefined;

/** Absolute path of tcpdump, or null when it is not installed (apt may still be installing it). */
export function findTcpdump(): string | null {
  if (tcpdumpPath !== undefined) return tcpdumpPath;
  tcpdumpPath = null;
  for (const p of ["/usr/bin/tcpdump", "/usr/sbin/tcpdump", "/bin/tcpdump", "/sbin/tcpdump"]) {
    try {
      if (Deno.statSync(p).isFile) return tcpdumpPath = p;
    } catch {
      // Not here.
    }
  }
  return tcpdumpPath;
}

let pythonPath: string | undefined;

/** The real python3 executable (resolving shims such as pyenv's once, so namespaced runs start fast). */
export function python3Bin(): string {
  if (pythonPath !== undefined) return pythonPath;
  pythonPath = "python3";
  try {
    const out = new Deno.Command("python3", { args: ["-c", "import sys; print(sys.executable)"] })
      .outputSync();
    const exe = new TextDecoder().decode(out.stdout).trim();
    if (out.success && exe) pythonPath = exe;
  } catch {
    // No python3 at all: spawning "python3" will fail with a clear NotFound.
  }
  return pythonPath;
}

/** A running capture; {@link Capture.stop} ends it and returns everything it saw as raw bytes. */
export class Capture {
  /** The program actually used. */
  readonly tool: "tcpdump" | "python";
  /**
   * Packets the kernel dropped before the capture read them, known after {@link Capture.stop}. A test
   * asserting that something is absent from a capture must also check that this is 0.
   */
  dropped: number | undefined;
  #proc: HostProcess;
  #file: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #result: Promise<Uint8Array> | undefined;

  private constructor(tool: "tcpdump" | "python", proc: HostProcess, file: string, maxMs: number) {
    this.tool = tool;
    this.#proc = proc;
    this.#file = file;
    // Bound the capture even if the test never calls stop().
    this.#timer = setTimeout(() => proc.kill("SIGTERM"), maxMs);
  }

  /** Starts capturing on `iface` (default every interface) of `host`; resolves once it is listening. */
  static async start(
    host: SpawnHost,
    file: string,
    filter: string,
    maxMs: number,
    tool: CaptureTool = "auto",
    iface = "any",
  ): Promise<Capture> {
    const tcpdump = findTcpdump();
    const use = tool === "auto" ? (tcpdump ? "tcpdump" : "python") : tool;
    if (use === "tcpdump" && !tcpdump) throw new CaptureError("capture: tcpdump is not installed");
    // Immediate mode so a test can peek at once; a 128 MiB ring of 64 KiB slots (GSO-sized packets) so
    // bursts are not dropped (the default 2 MiB ring holds only 8 full-snaplen packets).
    const tcpdumpArgs = [
      "-Z",
      "root",
      "--immediate-mode",
      "-B",
      "131072",
      "-s",
      "65535",
      "-i",
      iface,
      "-n",
      "-U",
    ];
    const cmd = use === "tcpdump"
      ? [tcpdump!, ...tcpdumpArgs, "-w", file, ...(filter ? [filter] : [])]
      : [python3Bin(), "-c", PY_CAPTURE, file, ...(iface === "any" ? [] : [iface])];
    const proc = host.spawn(cmd, { logPrefix: `${host.name}:capture` });
    const cap = new Capture(use, proc, file, maxMs);
    try {
      await proc.waitForOutput(/listening/, 10_000);
    } catch (e) {
      await cap.stop().catch(() => {});
      throw new CaptureError(`capture on ${host.name} (${use}) did not start: ${(e as Error).message}`);
    }
    return cap;
  }

  /** The bytes captured so far, without stopping (tcpdump writes each packet at once with -U). */
  async peek(): Promise<Uint8Array> {
    try {
      return await Deno.readFile(this.#file);
    } catch {
      return new Uint8Array(0);
    }
  }

  /** Stops the capture (idempotent) and returns the captured bytes (pcap or raw frames). */
  stop(): Promise<Uint8Array> {
    this.#result ??= (async () => {
      clearTimeout(this.#timer);
      await this.#proc.stop("SIGTERM", 2000);
      const m = this.#proc.output().match(/(\d+) packets? dropped by kernel/);
      this.dropped = m ? Number(m[1]) : undefined;
      return await this.peek();
    })();
    return this.#result;
  }
}

/** True when `needle` occurs anywhere in `haystack` (byte-wise). */
export function bytesContain(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}
