/**
 * Small traffic generator that tests run inside a host's namespace (`deno run -A traffic_tool.ts ...`):
 *   tcp-sink BIND PORT TIMEOUT_MS     accept one connection, read to EOF, print "received N SHA256"
 *   tcp-source HOST PORT BYTES        send BYTES random bytes, print "sent N SHA256"
 *   udp-send HOST PORT                send each stdin frame (u16 big-endian length + bytes), print "sent N"
 * Every mode is bounded: the sink gives up after TIMEOUT_MS, the others end with their input.
 */
import { createHash } from "node:crypto";

const CHUNK = 64 * 1024;

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

async function tcpSink(bind: string, port: number, timeoutMs: number): Promise<void> {
  const listener = Deno.listen({ hostname: bind, port, transport: "tcp" });
  const timer = setTimeout(() => {
    console.error(`tcp-sink: no complete transfer within ${timeoutMs} ms`);
    Deno.exit(3);
  }, timeoutMs);
  console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);
  const conn = await listener.accept();
  listener.close();
  const hash = createHash("sha256");
  const buf = new Uint8Array(CHUNK);
  let total = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    total += n;
  }
  conn.close();
  clearTimeout(timer);
  console.log(`received ${total} ${hash.digest("hex")}`);
}

async function tcpSource(host: string, port: number, bytes: number): Promise<void> {
  const conn = await Deno.connect({ hostname: host, port, transport: "tcp" });
  const hash = createHash("sha256");
  const buf = new Uint8Array(CHUNK);
  let left = bytes;
  while (left > 0) {
    const chunk = buf.subarray(0, Math.min(CHUNK, left));
    crypto.getRandomValues(chunk);
    hash.update(chunk);
    await writeAll(conn, chunk);
    left -= chunk.length;
  }
  await conn.closeWrite();
  // Wait for the sink's close so every byte is acknowledged before we report.
  await conn.read(buf).catch(() => null);
  conn.close();
  console.log(`sent ${bytes} ${hash.digest("hex")}`);
}

async function udpSend(host: string, port: number): Promise<void> {
  const sock = Deno.listenDatagram({
    hostname: host.includes(":") ? "::" : "0.0.0.0",
    port: 0,
    transport: "udp",
  });
  const to: Deno.NetAddr = { transport: "udp", hostname: host, port };
  let pending = new Uint8Array(0);
  let sent = 0;
  for await (const chunk of Deno.stdin.readable) {
    const joined = new Uint8Array(pending.length + chunk.length);
    joined.set(pending);
    joined.set(chunk, pending.length);
    let off = 0;
    while (joined.length - off >= 2) {
      const len = (joined[off] << 8) | joined[off + 1];
      if (joined.length - off - 2 < len) break;
      try {
        await sock.send(joined.subarray(off + 2, off + 2 + len), to);
        sent++;
      } catch (e) {
        // A fuzz datagram may be refused (ICMP unreachable surfaces as ECONNREFUSED): keep sending.
        if (!(e instanceof Deno.errors.ConnectionRefused)) throw e;
      }
      off += 2 + len;
    }
    pending = joined.slice(off);
  }
  sock.close();
  console.log(`sent ${sent}`);
}

if (import.meta.main) {
  const [mode, a, b, c] = Deno.args;
  if (mode === "tcp-sink") await tcpSink(a, Number(b), Number(c));
  else if (mode === "tcp-source") await tcpSource(a, Number(b), Number(c));
  else if (mode === "udp-send") await udpSend(a, Number(b));
  else {
    console.error(`traffic_tool: unknown mode ${mode}`);
    Deno.exit(2);
  }
}
