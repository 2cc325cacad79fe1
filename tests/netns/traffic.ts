/**
 * Traffic between test hosts, driven by `traffic_tool.ts` running inside each host's namespace:
 * a TCP transfer whose checksums the test compares, and a bounded UDP blast for fuzz tests.
 */
import type { HostProcess, SpawnHost } from "./process.ts";

/** Raised when a transfer cannot complete; the message carries both sides' output. */
export class TrafficError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TrafficError";
  }
}

/** Result of {@link tcpTransfer}: equal checksums and byte counts mean the data arrived intact. */
export interface TransferResult {
  sentBytes: number;
  receivedBytes: number;
  sentSha256: string;
  receivedSha256: string;
  /** Wall time from connect to the receiver's report, in milliseconds. */
  ms: number;
}

/** Options for {@link tcpTransfer}. */
export interface TransferOptions {
  /** Listening port on the receiver; 0 (default) lets the kernel pick. */
  port?: number;
  /** Upper bound for the whole transfer (default 20 s). */
  timeoutMs?: number;
}

/** Result of {@link udpBlast}. */
export interface BlastResult {
  /** Datagrams handed to the sender. */
  queued: number;
  /** Datagrams the sender reported as sent. */
  sent: number;
}

const TOOL = new URL("./traffic_tool.ts", import.meta.url).pathname;

function toolCmd(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--no-config", "--unstable-net", TOOL, ...args];
}

/** Sends `bytes` random bytes over TCP from `from` to `toAddress` (an address of `to`); returns checksums. */
export async function tcpTransfer(
  from: SpawnHost,
  to: SpawnHost,
  toAddress: string,
  bytes: number,
  opts: TransferOptions = {},
): Promise<TransferResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  const bind = toAddress.includes(":") ? "::" : "0.0.0.0";
  const sink = to.spawn(toolCmd("tcp-sink", bind, String(opts.port ?? 0), String(timeoutMs)), {
    logPrefix: `${to.name}:tcp-sink`,
  });
  let source: HostProcess | undefined;
  try {
    const port = (await sink.waitForOutput(/listening (\d+)/, Math.max(1, deadline - Date.now())))[1];
    const start = performance.now();
    source = from.spawn(toolCmd("tcp-source", toAddress, port, String(bytes)), {
      logPrefix: `${from.name}:tcp-source`,
    });
    const [sent, got] = await Promise.all([
      source.waitForOutput(/sent (\d+) ([0-9a-f]{64})/, Math.max(1, deadline - Date.now())),
      sink.waitForOutput(/received (\d+) ([0-9a-f]{64})/, Math.max(1, deadline - Date.now())),
    ]);
    return {
      sentBytes: Number(sent[1]),
      receivedBytes: Number(got[1]),
      sentSha256: sent[2],
      receivedSha256: got[2],
      ms: performance.now() - start,
    };
  } catch (e) {
    throw new TrafficError(
      `tcpTransfer ${from.name} -> ${to.name} (${toAddress}), ${bytes} bytes: ${(e as Error).message}` +
        `\n--- sender ---\n${source?.output() ?? "(not started)"}\n--- receiver ---\n${sink.output()}`,
    );
  } finally {
    await Promise.all([sink.stop("SIGKILL", 0), source?.stop("SIGKILL", 0)]);
  }
}

/**
 * Sends the given datagrams from `from` to `address`:`port` over UDP, stopping after `maxMs`, after
 * `maxCount` datagrams, or when the source ends, whichever comes first. Datagrams over 65507 bytes are cut.
 */
export async function udpBlast(
  from: SpawnHost,
  address: string,
  port: number,
  datagrams: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  maxMs: number,
  maxCount = 1_000_000,
): Promise<BlastResult> {
  const proc = from.spawn(toolCmd("udp-send", address, String(port)), {
    logPrefix: `${from.name}:udp-send`,
    stdin: true,
  });
  const writer = proc.stdin!.getWriter();
  const deadline = Date.now() + maxMs;
  let queued = 0;
  try {
    // Frames are batched so a flood of tiny datagrams does not cost one pipe write each.
    const batch = new Uint8Array(256 * 1024);
    let used = 0;
    for await (const d of datagrams) {
      if (queued >= maxCount || Date.now() >= deadline) break;
      const len = Math.min(d.length, 65507);
      if (used + 2 + len > batch.length) {
        await writer.write(batch.slice(0, used));
        used = 0;
      }
      batch[used] = len >> 8;
      batch[used + 1] = len & 0xff;
      batch.set(d.subarray(0, len), used + 2);
      used += 2 + len;
      queued++;
    }
    if (used > 0) await writer.write(batch.slice(0, used));
    await writer.close();
    const left = Math.max(1000, deadline - Date.now() + 1000);
    const m = await proc.waitForOutput(/sent (\d+)/, left);
    return { queued, sent: Number(m[1]) };
  } catch (e) {
    throw new TrafficError(`udpBlast ${from.name} -> ${address}:${port}: ${(e as Error).message}`);
  } finally {
    await writer.abort().catch(() => {});
    await proc.stop("SIGKILL", 0);
  }
}
