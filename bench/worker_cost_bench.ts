// What spreading the data path over Deno workers would cost per worker (docs/multicore.md): starting a
// worker and its memory, a postMessage round trip (small message, a 64 KiB batch transferred, the same
// copied), a SharedArrayBuffer wake-up with Atomics.wait/notify (both sides blocking, and the main side
// awaiting Atomics.waitAsync as an event loop would), and whether this kernel gives a TUN a second queue
// with IFF_MULTI_QUEUE (with the offloads on) and spreads flows over the queues. The TUN part runs in a
// network namespace this script creates and always deletes.
//
//   deno run -A bench/worker_cost_bench.ts [round trips per case, default 10000]      (TUN part as root)
//
// Every loop is bounded by its count, each wait by 1 s and the run by 60 s; nothing leaves the namespace.
import { TunDevice } from "../ffi/tun_device.ts";
import { setInterfaceAddress, setInterfaceUp } from "../ffi/interface.ts";
import { requireIp } from "../src/net/ip_address.ts";

const ROLE_ENV = "VPN_WORKER_BENCH_ROLE";
const WORKER_NAME = "worker_cost_echo";
const BATCH_BYTES = 65536;
const FLOWS = 64;
const decoder = new TextDecoder();

/** The worker's side: echo messages back (transferring ArrayBuffers when asked), or ping-pong on a SAB. */
interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

interface BatchMessage {
  buf: ArrayBuffer;
  /** Move the buffer back and forth (zero-copy) instead of cloning it. */
  transfer: boolean;
}

interface AtomicsRequest {
  sab: SharedArrayBuffer;
  rounds: number;
}

function serveWorker(scope: WorkerScope): void {
  scope.onmessage = (e) => {
    const m = e.data;
    if (typeof m === "object" && m !== null && "buf" in m) {
      const { buf, transfer } = m as BatchMessage;
      scope.postMessage({ buf, transfer } satisfies BatchMessage, transfer ? [buf] : []);
    } else if (typeof m === "object" && m !== null && "sab" in m) {
      const { sab, rounds } = m as AtomicsRequest;
      const a = new Int32Array(sab);
      for (let i = 1; i <= rounds; i++) {
        while (Atomics.load(a, 0) < i) {
          if (Atomics.wait(a, 0, i - 1, 1000) === "timed-out") return scope.postMessage("timeout");
        }
        Atomics.store(a, 1, i);
        Atomics.notify(a, 1);
      }
      scope.postMessage("done");
    } else scope.postMessage(m);
  };
  scope.postMessage("ready");
}

let pending: ((data: unknown) => void) | null = null;

/** The worker's next message; one handler set once, so a round trip costs no timer or closure setup. */
function next(): Promise<unknown> {
  return new Promise((resolve) => pending = resolve);
}

function rssMiB(): number {
  return Deno.memoryUsage().rss / 1048576;
}

const us = (ms: number, n: number) => (ms * 1000 / n).toFixed(2);

async function workerCosts(rounds: number): Promise<void> {
  const rss0 = rssMiB();
  const t0 = performance.now();
  const w = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
  w.onmessage = (e) => {
    const p = pending;
    pending = null;
    p?.(e.data);
  };
  // Bounds the whole run in time: a stalled worker ends it instead of hanging.
  const watchdog = setTimeout(() => {
    console.error("worker stalled for 60 s");
    Deno.exit(1);
  }, 60_000);
  try {
    if (await next() !== "ready") throw new Error("worker did not start");
    const startMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 200)); // let the worker's isolate settle before reading RSS
    console.log(`worker start (new Worker -> first message): ${startMs.toFixed(1)} ms`);
    console.log(`RSS: ${rss0.toFixed(1)} MiB -> ${rssMiB().toFixed(1)} MiB with one idle worker`);

    let t = performance.now();
    for (let i = 0; i < rounds; i++) {
      w.postMessage(i);
      if (await next() !== i) throw new Error("echo mismatch");
    }
    console.log(`postMessage round trip, a number: ${us(performance.now() - t, rounds)} µs`);

    let buf = new ArrayBuffer(BATCH_BYTES);
    t = performance.now();
    for (let i = 0; i < rounds; i++) {
      w.postMessage({ buf, transfer: true } satisfies BatchMessage, [buf]);
      buf = (await next() as BatchMessage).buf;
    }
    console.log(
      `postMessage round trip, 64 KiB ArrayBuffer transferred: ${us(performance.now() - t, rounds)} µs`,
    );

    const copied = new ArrayBuffer(BATCH_BYTES);
    const copyRounds = Math.max(1, rounds >> 2);
    t = performance.now();
    for (let i = 0; i < copyRounds; i++) {
      w.postMessage({ buf: copied, transfer: false } satisfies BatchMessage);
      await next();
    }
    console.log(
      `postMessage round trip, 64 KiB copied both ways: ${us(performance.now() - t, copyRounds)} µs`,
    );

    for (const mode of ["Atomics.wait (main blocks)", "Atomics.waitAsync (main awaits)"]) {
      const sab = new SharedArrayBuffer(8);
      const a = new Int32Array(sab);
      const done = next();
      w.postMessage({ sab, rounds } satisfies AtomicsRequest);
      t = performance.now();
      for (let i = 1; i <= rounds; i++) {
        Atomics.store(a, 0, i);
        Atomics.notify(a, 0);
        while (Atomics.load(a, 1) < i) {
          if (mode.startsWith("Atomics.wait ")) {
            if (Atomics.wait(a, 1, i - 1, 1000) === "timed-out") throw new Error("worker stalled");
          } else {
            const r = Atomics.waitAsync(a, 1, i - 1, 1000);
            if ((r.async ? await r.value : r.value) === "timed-out") throw new Error("worker stalled");
          }
        }
      }
      const ms = performance.now() - t;
      if (await done !== "done") throw new Error("worker stalled");
      console.log(`SharedArrayBuffer wake-up round trip, ${mode}: ${us(ms, rounds)} µs`);
    }
  } finally {
    clearTimeout(watchdog);
    w.terminate();
  }
}

/** In the namespace: two queues of one TUN, with offloads, and how FLOWS UDP flows land on them. */
async function multiQueueProbe(): Promise<void> {
  let t = performance.now();
  const q0 = TunDevice.open("mq0", { multiQueue: true, offload: true });
  const firstMs = performance.now() - t;
  t = performance.now();
  let q1: TunDevice;
  try {
    q1 = TunDevice.open("mq0", { multiQueue: true, offload: true, attach: true });
  } catch (e) {
    q0.close();
    console.log(`IFF_MULTI_QUEUE: second queue refused: ${(e as Error).message}`);
    return;
  }
  const secondMs = performance.now() - t;
  const socks: Deno.DatagramConn[] = [];
  try {
    console.log(
      `IFF_MULTI_QUEUE: two queues on mq0 (open ${firstMs.toFixed(2)} ms, add a queue ${
        secondMs.toFixed(2)
      } ms);` +
        ` offloads ${q0.offloads.join("+") || "none"} / ${q1.offloads.join("+") || "none"}`,
    );
    setInterfaceAddress("mq0", requireIp("10.211.0.1"), 24);
    setInterfaceUp("mq0");
    for (let i = 0; i < FLOWS; i++) {
      socks.push(Deno.listenDatagram({ transport: "udp", hostname: "10.211.0.1", port: 0 }));
    }
    for (const s of socks) {
      await s.send(new Uint8Array(8), { transport: "udp", hostname: "10.211.0.2", port: 9 });
    }
    const perQueue = [0, 0];
    const buf = new Uint8Array(65546);
    const deadline = Date.now() + 1000;
    while (perQueue[0] + perQueue[1] < FLOWS && Date.now() < deadline) {
      [q0, q1].forEach((q, i) => {
        for (let n = q.read(buf); n > 0; n = q.read(buf)) {
          if (buf[10] >> 4 === 4 && buf[19] === 17) perQueue[i]++;
        }
      });
      await new Promise((r) => setTimeout(r, 5));
    }
    console.log(
      `IFF_MULTI_QUEUE: ${FLOWS} UDP flows out of the TUN landed ${perQueue[0]} / ${
        perQueue[1]
      } on the queues`,
    );
  } finally {
    for (const s of socks) s.close();
    q0.close();
    q1.close();
  }
}

function tunPart(): Promise<void> {
  const ns = `vpnwbench${Deno.pid}`;
  const ip = (...args: string[]) => new Deno.Command("ip", { args, stderr: "piped" }).outputSync();
  const add = ip("netns", "add", ns);
  if (!add.success) {
    console.log(
      `IFF_MULTI_QUEUE: skipped (ip netns add failed; run as root): ${decoder.decode(add.stderr).trim()}`,
    );
    return Promise.resolve();
  }
  return (async () => {
    try {
      const status = await new Deno.Command("ip", {
        args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", import.meta.filename!],
        env: { [ROLE_ENV]: "tun" },
        stdout: "inherit",
        stderr: "inherit",
      }).spawn().status;
      if (!status.success) Deno.exitCode = 1;
    } finally {
      ip("netns", "del", ns);
    }
  })();
}

const scope = globalThis as unknown as { name?: string } & WorkerScope;
if (scope.name === WORKER_NAME) {
  serveWorker(scope);
} else if (Deno.env.get(ROLE_ENV) === "tun") {
  await multiQueueProbe();
} else {
  const rounds = Number(Deno.args[0] ?? 10000);
  if (!(Number.isInteger(rounds) && rounds > 0 && rounds <= 200000)) {
    throw new Error("round trips per case must be an integer in [1, 200000]");
  }
  console.log(
    `deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, ${rounds} round trips per case`,
  );
  await workerCosts(rounds);
  await tunPart();
}
