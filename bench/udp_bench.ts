/**
 * UDP throughput over loopback: "batched" (FFI recvmmsg/sendmmsg) vs "deno" (Deno.listenDatagram).
 * Two processes per case (this script re-runs itself as the receiver) so sender and receiver each get an
 * event loop and a core, as a VPN's peers would. The sender runs 2 s (at most 4M datagrams).
 *
 * Run: deno run -A bench/udp_bench.ts [--secs 2] [--json]
 */
import { DatagramBatch, type DatagramKind, type DatagramSocket } from "../src/dataplane/datagram.ts";
import { openDatagramSocket } from "../src/dataplane/datagram_select.ts";
import { copyEndpoint, endpointFromParts } from "../src/net/endpoint.ts";

const BATCH = 64;
const MAX_DATAGRAMS = 4_000_000;
/** The receiver stops after this long without a datagram (once traffic started). */
const IDLE_MS = 400;

interface RecvReport {
  received: number;
  pps: number;
}

interface CaseResult {
  kind: DatagramKind;
  size: number;
  sent: number;
  senderPps: number;
  received: number;
  receiverPps: number;
  lossPercent: number;
}

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

/** Receiver role: prints its port, counts datagrams until idle, prints a JSON report. */
async function receiver(kind: DatagramKind, size: number, maxSecs: number): Promise<void> {
  const { socket } = await openDatagramSocket({ kind, hostname: "127.0.0.1", port: 0 });
  console.log(socket.localPort);
  const batch = new DatagramBatch(kind === "batched" ? 256 : 1, Math.max(size, 2048));
  let n = 0, first = 0, last = 0;
  const started = performance.now();
  const watchdog = setInterval(() => {
    const now = performance.now();
    if ((last > 0 && now - last > IDLE_MS) || now - started > maxSecs * 1000) socket.close();
  }, 50);
  while (true) {
    const k = await socket.receive(batch);
    if (k === 0) break;
    if (n === 0) first = performance.now();
    n += k;
    last = performance.now();
  }
  clearInterval(watchdog);
  const report: RecvReport = { received: n, pps: n > 1 ? Math.round(n / ((last - first) / 1000)) : 0 };
  console.log(JSON.stringify(report));
}

/** Sends `size`-byte datagrams for `secs` (bounded by MAX_DATAGRAMS); returns count and rate. */
async function sender(
  socket: DatagramSocket,
  size: number,
  port: number,
  secs: number,
): Promise<{ sent: number; pps: number }> {
  const batch = new DatagramBatch(BATCH, size);
  const dst = endpointFromParts("127.0.0.1", port);
  for (let i = 0; i < BATCH; i++) {
    batch.bufs[i].fill(i);
    batch.lens[i] = size;
    copyEndpoint(batch.endpoints[i], dst);
  }
  let sent = 0;
  const t0 = performance.now(), end = t0 + secs * 1000;
  if (socket.kind === "batched") {
    // Sync sendmmsg; check the clock once per batch.
    while (sent < MAX_DATAGRAMS && performance.now() < end) sent += socket.send(batch, BATCH) as number;
  } else {
    while (sent < MAX_DATAGRAMS && performance.now() < end) sent += await socket.send(batch, BATCH);
  }
  const ms = performance.now() - t0;
  return { sent, pps: Math.round(sent / (ms / 1000)) };
}

async function runCase(kind: DatagramKind, size: number, secs: number): Promise<CaseResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      new URL(import.meta.url).pathname,
      "--role",
      "recv",
      "--kind",
      kind,
      "--size",
      String(size),
      "--secs",
      String(secs + 5),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async (): Promise<string> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`receiver exited early (${kind}, ${size} B)`);
      buffered += value;
    }
    const i = buffered.indexOf("\n");
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return line;
  };
  try {
    const port = Number(await nextLine());
    const { socket } = await openDatagramSocket({ kind, hostname: "127.0.0.1", port: 0 });
    const tx = await sender(socket, size, port, secs);
    socket.close();
    const rx: RecvReport = JSON.parse(await nextLine());
    return {
      kind,
      size,
      sent: tx.sent,
      senderPps: tx.pps,
      received: rx.received,
      receiverPps: rx.pps,
      lossPercent: tx.sent ? Math.round((1 - rx.received / tx.sent) * 1000) / 10 : 0,
    };
  } finally {
    lines.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.status;
  }
}

if (arg("role", "") === "recv") {
  await receiver(
    arg("kind", "batched") as DatagramKind,
    Number(arg("size", "1400")),
    Number(arg("secs", "7")),
  );
} else {
  const secs = Number(arg("secs", "2"));
  const results: CaseResult[] = [];
  for (const size of [1400, 64]) {
    for (const kind of ["batched", "deno"] as const) results.push(await runCase(kind, size, secs));
  }
  if (Deno.args.includes("--json")) {
    console.log(JSON.stringify(results));
  } else {
    console.log("UDP over 127.0.0.1, sender and receiver in separate processes, %d s per case", secs);
    console.log("kind     size   sent pps   recv pps   loss   Gbit/s(recv)");
    for (const r of results) {
      const gbps = (r.receiverPps * r.size * 8) / 1e9;
      console.log(
        `${r.kind.padEnd(8)} ${String(r.size).padStart(4)} ${String(r.senderPps).padStart(10)} ${
          String(r.receiverPps).padStart(10)
        } ${(r.lossPercent + "%").padStart(6)}   ${gbps.toFixed(2)}`,
      );
    }
  }
}
