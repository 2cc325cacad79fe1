import { assert, assertEquals, assertRejects as rejects, assertThrows as throws } from "./assert.ts";
import {
  DatagramBatch,
  DatagramError,
  type DatagramKind,
  type DatagramSocket,
} from "../src/dataplane/datagram.ts";
import { openDatagramSocket, wildcardAddressFor } from "../src/dataplane/datagram_select.ts";
import {
  copyEndpoint,
  type Endpoint,
  endpointEquals,
  EndpointError,
  endpointFromParts,
  endpointIsV4,
  endpointToString,
  resolveEndpoint,
} from "../src/net/endpoint.ts";

/** `throws` plus a check that the message mentions `part`. */
function assertThrows<E extends Error>(fn: () => unknown, type: new (...a: never[]) => E, part = ""): E {
  const e = throws(fn, type);
  assert(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
  return e;
}

/** `rejects` plus a check that the message mentions `part`. */
async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...a: never[]) => E,
  part = "",
): Promise<E> {
  const e = await rejects(fn, type);
  assert(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
  return e;
}

const KINDS: DatagramKind[] = ["batched", "deno"];
const PAIRS: [DatagramKind, DatagramKind][] = KINDS.flatMap((a) =>
  KINDS.map((b) => [a, b] as [DatagramKind, DatagramKind])
);

async function open(kind: DatagramKind, hostname: string, port = 0): Promise<DatagramSocket> {
  const { socket } = await openDatagramSocket({ kind, hostname, port });
  assertEquals(socket.kind, kind);
  return socket;
}

/** The endpoint another socket on `host` sees for `s`. */
function endpointOf(s: DatagramSocket, host: string): Endpoint {
  return endpointFromParts(host, s.localPort);
}

interface Got {
  data: Uint8Array;
  from: string;
}

/** Receives until `want` datagrams arrived (copies them out); fails after `ms`. */
async function receiveN(s: DatagramSocket, want: number, ms = 2000, slot = 2048): Promise<Got[]> {
  const batch = new DatagramBatch(64, slot);
  const out: Got[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    s.close();
  }, ms);
  try {
    while (out.length < want) {
      const n = await s.receive(batch);
      if (n === 0) break;
      assertEquals(batch.count, n);
      for (let i = 0; i < n; i++) {
        out.push({ data: batch.bufs[i].slice(0, batch.lens[i]), from: endpointToString(batch.endpoints[i]) });
      }
    }
  } finally {
    clearTimeout(timer);
  }
  assert(!timedOut, `timed out with ${out.length} of ${want} datagrams`);
  return out;
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

async function sendAll(s: DatagramSocket, batch: DatagramBatch, count: number): Promise<number> {
  return await s.send(batch, count);
}

// ---- endpoints -------------------------------------------------------------------------------------

Deno.test("endpoint: parts, text and bytes", () => {
  const v4 = endpointFromParts("1.2.3.4", 51820);
  assertEquals(v4.length, 18);
  assertEquals([...v4], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4, 0xca, 0x6c]);
  assert(endpointIsV4(v4));
  assertEquals(endpointToString(v4), "1.2.3.4:51820");
  const v6 = endpointFromParts("::1", 51820);
  assert(!endpointIsV4(v6));
  assertEquals(endpointToString(v6), "[::1]:51820");
  assertEquals(endpointToString(endpointFromParts("2001:DB8:0:0:1:0:0:1", 1)), "[2001:db8::1:0:0:1]:1");
  assertEquals(endpointToString(endpointFromParts("fe80::1%eth0", 7)), "[fe80::1]:7");
  assertEquals(endpointToString(endpointFromParts("::", 0)), "[::]:0");
  assertEquals(endpointToString(endpointFromParts("::ffff:10.0.0.1", 9)), "10.0.0.1:9");
  assertEquals(endpointToString(endpointFromParts("1:2:3:4:5:6:7:8", 9)), "[1:2:3:4:5:6:7:8]:9");
  assert(endpointEquals(endpointFromParts("::ffff:1.2.3.4", 51820), v4));
  assert(!endpointEquals(endpointFromParts("1.2.3.4", 51821), v4));
  const into = new Uint8Array(18);
  assertEquals(endpointFromParts("10.0.0.2", 80, into), into);
  copyEndpoint(into, v6);
  assert(endpointEquals(into, v6));
  for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "::1::2", "1:2:3:4:5:6:7:8:9", "example.com", ""]) {
    assertThrows(() => endpointFromParts(bad, 1), EndpointError, "not an IPv4 or IPv6 address");
  }
  assertThrows(() => endpointFromParts("1.2.3.4", 65536), EndpointError, "port");
});

Deno.test("endpoint: resolveEndpoint accepts literals, localhost, hosts file", async () => {
  assertEquals(endpointToString(await resolveEndpoint("1.2.3.4:51820")), "1.2.3.4:51820");
  assertEquals(endpointToString(await resolveEndpoint("[::1]:51820")), "[::1]:51820");
  assertEquals(endpointToString(await resolveEndpoint("localhost:9")), "127.0.0.1:9");
  const hosts = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(
      hosts,
      "# test\n2001:db8::7 vpn-test.invalid\n192.0.2.7   other vpn-test.invalid\n",
    );
    const e = await resolveEndpoint("VPN-test.invalid:51820", { hostsFile: hosts });
    assertEquals(endpointToString(e), "192.0.2.7:51820");
  } finally {
    await Deno.remove(hosts);
  }
});

Deno.test("endpoint: bad inputs give clear messages", async () => {
  const cases: [string, string][] = [
    ["1.2.3.4", "no port given"],
    ["1.2.3.4:0", "port 0 is out of range 1..65535"],
    [":80", "missing host"],
    ["1.2.3.4:70000", "port 70000 is out of range 1..65535"],
    ["[::1]", "no port after the brackets"],
    ["::1:51820", "write an IPv6 address in brackets"],
    ["[::1:51820", "missing ']'"],
    ["[1.2.3.4]:5", "is not an IPv6 address"],
    ["1.2.3.4:abc", 'port "abc"'],
    ["host name with spaces:1", "neither an IP address nor a valid host name"],
    ["10.0.0.01:1", "is not an IPv4 address"],
  ];
  for (const [input, why] of cases) {
    const err = await assertRejects(() => resolveEndpoint(input), EndpointError, why);
    assert(err.message.includes(JSON.stringify(input)), `message names the input: ${err.message}`);
    assertEquals(err.input, input);
  }
});

// ---- sockets ---------------------------------------------------------------------------------------

for (const [sk, rk] of PAIRS) {
  Deno.test(`datagram ${sk} -> ${rk}: sizes 0, 1, 1420, 1500 round-trip with source endpoints`, async () => {
    const rx = await open(rk, "127.0.0.1");
    const tx = await open(sk, "127.0.0.1");
    try {
      const sizes = [0, 1, 1420, 1500];
      const batch = new DatagramBatch(8, 1500);
      for (let i = 0; i < sizes.length; i++) {
        batch.bufs[i].set(pattern(sizes[i], i));
        batch.lens[i] = sizes[i];
        copyEndpoint(batch.endpoints[i], endpointOf(rx, "127.0.0.1"));
      }
      assertEquals(await sendAll(tx, batch, sizes.length), sizes.length);
      const got = await receiveN(rx, sizes.length);
      assertEquals(got.map((g) => g.data.length), sizes);
      for (let i = 0; i < sizes.length; i++) {
        assertEquals(got[i].data, pattern(sizes[i], i));
        assertEquals(got[i].from, `127.0.0.1:${tx.localPort}`);
      }
      // Reply with sendOne to the source as received.
      const reply = pattern(1420, 99);
      assertEquals(await rx.sendOne(reply, 1420, endpointOf(tx, "127.0.0.1")), 1);
      const back = await receiveN(tx, 1);
      assertEquals(back[0].data, reply);
      assertEquals(back[0].from, `127.0.0.1:${rx.localPort}`);
    } finally {
      rx.close();
      tx.close();
    }
  });
}

for (const [sk, rk] of PAIRS) {
  Deno.test(`datagram ${sk} -> ${rk}: 64 datagrams from two senders arrive intact`, async () => {
    const rx = await open(rk, "127.0.0.1");
    const a = await open(sk, "127.0.0.1");
    const b = await open(sk, "127.0.0.1");
    try {
      const dst = endpointOf(rx, "127.0.0.1");
      const batchA = new DatagramBatch(32, 1500), batchB = new DatagramBatch(32, 1500);
      for (let i = 0; i < 32; i++) {
        for (const [batch, seed] of [[batchA, i], [batchB, 100 + i]] as const) {
          const len = 1 + ((seed * 37) % 1500);
          batch.bufs[i].set(pattern(len, seed));
          batch.bufs[i][0] = seed;
          batch.lens[i] = len;
          copyEndpoint(batch.endpoints[i], dst);
        }
      }
      assertEquals(await sendAll(a, batchA, 32), 32);
      assertEquals(await sendAll(b, batchB, 32), 32);
      const got = await receiveN(rx, 64);
      assertEquals(got.length, 64);
      const seen = new Set<number>();
      for (const g of got) {
        const seed = g.data[0];
        const expect = pattern(1 + ((seed * 37) % 1500), seed);
        expect[0] = seed;
        assertEquals(g.data, expect);
        assertEquals(g.from, `127.0.0.1:${seed < 100 ? a.localPort : b.localPort}`);
        seen.add(seed);
      }
      assertEquals(seen.size, 64);
    } finally {
      rx.close();
      a.close();
      b.close();
    }
  });
}

for (const [sk, rk] of PAIRS) {
  Deno.test(`datagram ${sk} -> ${rk}: IPv6 loopback`, async () => {
    const rx = await open(rk, "::1");
    const tx = await open(sk, "[::1]");
    try {
      assertEquals(rx.localAddress, `[::1]:${rx.localPort}`);
      const batch = new DatagramBatch(1, 1500);
      batch.bufs[0].set(pattern(1400, 3));
      batch.lens[0] = 1400;
      copyEndpoint(batch.endpoints[0], endpointOf(rx, "::1"));
      assertEquals(await sendAll(tx, batch, 1), 1);
      const [g] = await receiveN(rx, 1);
      assertEquals(g.data, pattern(1400, 3));
      assertEquals(g.from, `[::1]:${tx.localPort}`);
    } finally {
      rx.close();
      tx.close();
    }
  });
}

for (const [sk, rk] of PAIRS) {
  Deno.test(`datagram ${sk} IPv4 -> ${rk} dual-stack [::]: receives and replies`, async () => {
    const server = await open(rk, "::");
    const client = await open(sk, wildcardAddressFor(endpointFromParts("127.0.0.1", 1)));
    try {
      assertEquals(server.localAddress, `[::]:${server.localPort}`);
      assertEquals(client.localAddress, `0.0.0.0:${client.localPort}`);
      const msg = pattern(100, 5);
      assertEquals(await client.sendOne(msg, 100, endpointOf(server, "127.0.0.1")), 1);
      const batch = new DatagramBatch(4, 1500);
      assertEquals(await server.receive(batch), 1);
      assert(endpointIsV4(batch.endpoints[0]), "an IPv4 peer shows as a v4-mapped endpoint");
      assertEquals(endpointToString(batch.endpoints[0]), `127.0.0.1:${client.localPort}`);
      assertEquals(batch.bufs[0].slice(0, batch.lens[0]), msg);
      // Reply to the endpoint exactly as received.
      batch.bufs[0].set(pattern(50, 6));
      batch.lens[0] = 50;
      assertEquals(await server.send(batch, 1), 1);
      const [g] = await receiveN(client, 1);
      assertEquals(g.data, pattern(50, 6));
      assertEquals(g.from, `127.0.0.1:${server.localPort}`);
    } finally {
      server.close();
      client.close();
    }
  });
}

for (const [first, second] of PAIRS) {
  Deno.test(`datagram ${first} then ${second} on the same port: EADDRINUSE names the address`, async () => {
    const s = await open(first, "127.0.0.1");
    try {
      const err = await assertRejects(
        () => openDatagramSocket({ kind: second, hostname: "127.0.0.1", port: s.localPort }),
        DatagramError,
      );
      assertEquals(err.code, "EADDRINUSE");
      assert(err.message.includes(`127.0.0.1:${s.localPort}`), err.message);
      assert(err.message.includes("address already in use"), err.message);
    } finally {
      s.close();
    }
  });
}

Deno.test("datagram: binding a name or a bad port is refused clearly", async () => {
  await assertRejects(
    () => openDatagramSocket({ kind: "auto", hostname: "example.com", port: 1 }),
    DatagramError,
    "is not an IP address to bind",
  );
  await assertRejects(
    () => openDatagramSocket({ kind: "deno", hostname: "::", port: 70000 }),
    DatagramError,
    "port must be 0..65535",
  );
  // 192.0.2.1 (TEST-NET-1) is on no interface here.
  const err = await assertRejects(
    () => openDatagramSocket({ kind: "batched", hostname: "192.0.2.1", port: 0 }),
    DatagramError,
  );
  assertEquals(err.code, "EADDRNOTAVAIL");
});

for (const kind of KINDS) {
  Deno.test(`datagram ${kind}: close() makes a pending receive return 0 promptly`, async () => {
    const s = await open(kind, "::");
    const batch = new DatagramBatch(4, 1500);
    const pending = s.receive(batch);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    s.close();
    assertEquals(await pending, 0);
    const ms = performance.now() - t0;
    assert(ms < 150, `receive took ${ms.toFixed(0)} ms to notice close()`);
    assertEquals(await s.receive(batch), 0);
    assertEquals(await s.send(batch, 1), 0);
  });

  Deno.test(`datagram ${kind}: a datagram larger than a slot is dropped and counted`, async () => {
    const rx = await open(kind, "127.0.0.1");
    const tx = await open("batched", "127.0.0.1");
    try {
      const batch = new DatagramBatch(2, 1500);
      batch.lens[0] = 1500;
      batch.lens[1] = 10;
      copyEndpoint(batch.endpoints[0], endpointOf(rx, "127.0.0.1"));
      copyEndpoint(batch.endpoints[1], endpointOf(rx, "127.0.0.1"));
      batch.bufs[1].set(pattern(10, 1));
      assertEquals(tx.send(batch, 2), 2);
      const got = await receiveN(rx, 1, 2000, 1000);
      assertEquals(got[0].data, pattern(10, 1));
      assertEquals(rx.truncated, 1);
    } finally {
      rx.close();
      tx.close();
    }
  });
}

Deno.test("datagram batched: an IPv4 socket skips an IPv6 destination and sends the rest", async () => {
  const rx = await open("batched", "127.0.0.1");
  const tx = await open("batched", "127.0.0.1");
  try {
    const batch = new DatagramBatch(3, 100);
    for (let i = 0; i < 3; i++) {
      batch.bufs[i][0] = i;
      batch.lens[i] = 1;
      copyEndpoint(
        batch.endpoints[i],
        i === 1 ? endpointFromParts("::1", rx.localPort) : endpointOf(rx, "127.0.0.1"),
      );
    }
    assertEquals(tx.send(batch, 3), 2);
    assertEquals(tx.sendErrors, 1);
    const got = await receiveN(rx, 2);
    assertEquals(got.map((g) => g.data[0]), [0, 2]);
  } finally {
    rx.close();
    tx.close();
  }
});

Deno.test("datagram auto: batched with FFI, deno with the reason without --allow-ffi", async () => {
  const { socket, fallbackReason } = await openDatagramSocket({
    kind: "auto",
    hostname: "127.0.0.1",
    port: 0,
  });
  socket.close();
  assertEquals(socket.kind, "batched");
  assertEquals(fallbackReason, undefined);
  const url = new URL("../src/dataplane/datagram_select.ts", import.meta.url).href;
  const code = `const m = await import(${JSON.stringify(url)});
    const r = await m.openDatagramSocket({ kind: "auto", hostname: "127.0.0.1", port: 0 });
    r.socket.close();
    console.log(JSON.stringify({ kind: r.socket.kind, reason: r.fallbackReason }));`;
  const noFfi = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-net", "--no-check", "--allow-net", "--allow-read", "--deny-ffi", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = noFfi.stdin.getWriter();
  await w.write(new TextEncoder().encode(code));
  await w.close();
  const res = await noFfi.output();
  assert(res.success, new TextDecoder().decode(res.stderr));
  const r = JSON.parse(new TextDecoder().decode(res.stdout));
  assertEquals(r.kind, "deno");
  assert(typeof r.reason === "string" && r.reason.includes("FFI"), r.reason);
});

Deno.test("datagram batched: UDP_GRO trains are cut into datagrams, across calls when the batch is full", async () => {
  const { socket: rx } = await openDatagramSocket({
    kind: "batched",
    hostname: "127.0.0.1",
    port: 0,
    gro: true,
  });
  const tx = await open("batched", "127.0.0.1");
  try {
    assertEquals(rx.gro, true);
    // 40 datagrams of 1000 bytes and a short last one go out as one GSO message and arrive as one train.
    const out = new DatagramBatch(64, 2048);
    const sizes = [...Array(40).fill(1000), 300];
    sizes.forEach((len, i) => {
      out.bufs[i].fill(i + 1, 0, len);
      out.lens[i] = len;
      copyEndpoint(out.endpoints[i], endpointOf(rx, "127.0.0.1"));
    });
    assertEquals(await tx.send(out, sizes.length), sizes.length);
    // 65 slots of 64 KiB: the top 32 take trains, so at most 33 datagrams per call.
    const batch = new DatagramBatch(65, 65535);
    const got: number[] = [];
    const until = Date.now() + 2000;
    while (got.length < sizes.length && Date.now() < until) {
      const n = rx.pending ? rx.receiveNow(batch) : await rx.receive(batch);
      assert(n <= 33, `${n} datagrams in one call`);
      for (let i = 0; i < n; i++) {
        const len = batch.lens[i], first = batch.bufs[i][0];
        assert(batch.bufs[i].subarray(0, len).every((v) => v === first), `datagram ${got.length} mixed`);
        assertEquals(endpointToString(batch.endpoints[i]), `127.0.0.1:${tx.localPort}`);
        got.push(first === 41 ? -len : len);
      }
    }
    assertEquals(got, [...Array(40).fill(1000), -300]);
    assertEquals(rx.pending, false);
  } finally {
    rx.close();
    tx.close();
  }
});
