/**
 * Data-path AEAD benchmark: seal and open rates of AES-256-GCM for 64-, 512- and 1400-byte packets,
 * one at a time and in batches of 64, for the OpenSSL (FFI) and WebCrypto `PacketAead` backends, the
 * `Session` layer on top (header, counter, replay window, in the steps tunnel.ts runs), and `node:crypto`
 * for comparison.
 *
 * Usage: deno run -A bench/crypto_bench.ts [seconds per case, default 1] [--json]
 * Open cases restore the sealed datagram from a pristine copy before each open (a <= 1.4 KB memcpy,
 * included in the figure) because opening decrypts in place.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { AeadBackend, PacketAead } from "../src/protocol/aead.ts";
import { selectAeadBackend } from "../src/dataplane/aead_select.ts";
import { Session } from "../src/protocol/session.ts";

const SECONDS = Number(Deno.args.find((a) => /^[\d.]+$/.test(a)) ?? 1);
const JSON_OUT = Deno.args.includes("--json");
const SIZES = [64, 512, 1400];
const BATCH = 64;

/** One measured case. */
interface Row {
  impl: string;
  op: "seal" | "open";
  size: number;
  batch: number;
  pps: number;
  mbps: number;
}

const rows: Row[] = [];

/** Runs `step` (which handles `per` packets) repeatedly for SECONDS after a short warm-up. */
async function measure(
  impl: string,
  op: "seal" | "open",
  size: number,
  batch: number,
  per: number,
  step: () => void | Promise<void>,
): Promise<void> {
  const warmEnd = performance.now() + Math.min(200, SECONDS * 200);
  while (performance.now() < warmEnd) {
    const r = step();
    if (r instanceof Promise) await r;
  }
  let n = 0;
  const t0 = performance.now(), end = t0 + SECONDS * 1000;
  do {
    for (let i = 0; i < 16; i++) {
      const r = step();
      if (r instanceof Promise) await r;
    }
    n += 16 * per;
  } while (performance.now() < end);
  const pps = n / ((performance.now() - t0) / 1000);
  const row = { impl, op, size, batch, pps, mbps: (pps * size * 8) / 1e6 };
  rows.push(row);
  if (!JSON_OUT) {
    console.log(
      `${impl.padEnd(16)} ${op.padEnd(5)} ${String(size).padStart(5)} B  batch ${
        String(batch).padStart(2)
      }  ` +
        `${(pps / 1000).toFixed(0).padStart(6)} kpps  ${row.mbps.toFixed(0).padStart(6)} Mbit/s`,
    );
  }
}

function slots(size: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    const b = new Uint8Array(1500);
    b[0] = 3;
    b[4] = 1;
    b[12] = i;
    crypto.getRandomValues(b.subarray(13, 13 + size));
    return b;
  });
}

function setCounter(b: Uint8Array, c: number): void {
  b[9] = c >>> 24;
  b[10] = c >>> 16;
  b[11] = c >>> 8;
  b[12] = c;
}

async function benchBackend(backend: AeadBackend, raw: Uint8Array, size: number): Promise<void> {
  const key: PacketAead = await backend.createKey(raw);
  const name = backend.kind;
  const bufs = slots(size, BATCH);
  const lens = new Int32Array(BATCH);
  let ctr = 0;
  // seal, one at a time
  const one = bufs[0];
  await measure(name, "seal", size, 1, 1, () => {
    setCounter(one, ctr++);
    return key.sealOne(one, size);
  });
  // seal, batches of 64, as the data path seals a batch: every packet issued, then one wait if async
  const pending: Promise<unknown>[] = [];
  const settle = (): void | Promise<void> => {
    if (pending.length === 0) return;
    const all = Promise.all(pending);
    pending.length = 0;
    return all.then(() => {});
  };
  await measure(name, "seal", size, BATCH, BATCH, () => {
    for (let i = 0; i < BATCH; i++) {
      setCounter(bufs[i], ctr++);
      const r = key.sealOne(bufs[i], size);
      if (r instanceof Promise) pending.push(r);
    }
    return settle();
  });
  // open: prepare sealed packets and pristine copies
  for (let i = 0; i < BATCH; i++) {
    setCounter(bufs[i], i);
    const r = key.sealOne(bufs[i], size);
    if (r instanceof Promise) pending.push(r);
  }
  await settle();
  const pristine = bufs.map((b) => b.slice());
  const total = size + 29;
  await measure(name, "open", size, 1, 1, () => {
    one.set(pristine[0]);
    const r = key.openOne(one, total);
    if (r instanceof Promise) {
      return r.then((n) => {
        if (n !== size) throw new Error("open failed");
      });
    }
    if (r !== size) throw new Error("open failed");
  });
  const check = () => {
    for (let i = 0; i < BATCH; i++) if (lens[i] !== size) throw new Error("open failed");
  };
  await measure(name, "open", size, BATCH, BATCH, () => {
    for (let i = 0; i < BATCH; i++) {
      bufs[i].set(pristine[i]);
      const r = key.openOne(bufs[i], total);
      if (typeof r === "number") lens[i] = r;
      else pending.push(r.then((n) => lens[i] = n));
    }
    const r = settle();
    if (r !== undefined) return r.then(check);
    check();
  });
  key.dispose();
}

async function benchSession(backend: AeadBackend, raw: Uint8Array, size: number): Promise<void> {
  const mk = (init: boolean) =>
    Session.create(backend, {
      localIndex: init ? 1 : 2,
      remoteIndex: init ? 2 : 1,
      isInitiator: init,
      keys: { initiatorToResponder: raw.slice(), responderToInitiator: raw.slice() },
      now: 0,
    });
  const c = await mk(true);
  let recv = await mk(false);
  const bufs = slots(size, BATCH);
  const name = `session+${backend.kind}`;
  // As tunnel.ts seals a batch: every header (prepareSeal) while draining, then the AEAD per packet.
  const pending: Promise<unknown>[] = [];
  await measure(name, "seal", size, BATCH, BATCH, () => {
    for (let i = 0; i < BATCH; i++) c.prepareSeal(bufs[i], 1);
    for (let i = 0; i < BATCH; i++) {
      const r = c.sendKey.sealOne(bufs[i], size);
      if (r instanceof Promise) pending.push(r);
    }
    if (pending.length === 0) return;
    const all = Promise.all(pending);
    pending.length = 0;
    return all.then(() => {});
  });
  // Opens need unseen counters (replay window): seal a stock of datagrams with consecutive counters
  // up front; when it runs out, a fresh receiver makes the same stock valid again.
  const stock: Uint8Array[] = [];
  c.nextCounter = 0;
  for (let i = 0; i < 4096; i++) {
    const b = new Uint8Array(1500);
    const r = c.seal(b, size, 1);
    if (r instanceof Promise) await r;
    stock.push(b.slice(0, size + 29));
  }
  const work = new Uint8Array(1500);
  const total = size + 29;
  let k = 0, bad = 0;
  await measure(name, "open", size, 1, 1, () => {
    if (k === stock.length) {
      recv.dispose();
      k = 0;
      return mk(false).then((n) => {
        recv = n;
      });
    }
    work.set(stock[k++]);
    // As tunnel.ts receives: counter pre-check, tag check in place, then commit the counter.
    const counter = recv.checkReceive(work, 1);
    if (counter < 0) return void bad++;
    const r = recv.recvKey.openOne(work, total);
    const done = (n: number) => void ((n !== size || !recv.acceptCounter(counter)) && bad++);
    if (typeof r !== "number") return r.then(done);
    done(r);
  });
  if (bad > 0) throw new Error(`${bad} session opens failed`);
  c.dispose();
  recv.dispose();
}

function benchNode(raw: Uint8Array, size: number): Promise<void> {
  const one = slots(size, 1)[0];
  const iv = new Uint8Array(12);
  const seal = () => {
    for (let i = 0; i < 8; i++) iv[4 + i] = one[5 + i];
    const c = createCipheriv("aes-256-gcm", raw, iv);
    c.setAAD(one.subarray(0, 13));
    one.set(c.update(one.subarray(13, 13 + size)), 13);
    c.final();
    one.set(c.getAuthTag(), 13 + size);
  };
  return (async () => {
    let ctr = 0;
    await measure("node:crypto", "seal", size, 1, 1, () => {
      setCounter(one, ctr++);
      seal();
    });
    setCounter(one, 7);
    seal();
    const pristine = one.slice();
    await measure("node:crypto", "open", size, 1, 1, () => {
      one.set(pristine);
      for (let i = 0; i < 8; i++) iv[4 + i] = one[5 + i];
      const d = createDecipheriv("aes-256-gcm", raw, iv);
      d.setAAD(one.subarray(0, 13));
      d.setAuthTag(one.subarray(13 + size, 29 + size));
      one.set(d.update(one.subarray(13, 13 + size)), 13);
      d.final(); // throws on a bad tag
    });
  })();
}

if (import.meta.main) {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const openssl = await selectAeadBackend("auto");
  if (openssl.fallbackReason) console.error(`openssl unavailable: ${openssl.fallbackReason}`);
  const webcrypto = (await selectAeadBackend("webcrypto")).backend;
  if (!JSON_OUT) console.log(`AES-256-GCM, ${SECONDS} s per case, Deno ${Deno.version.deno}`);
  for (const size of SIZES) {
    if (openssl.backend.kind === "openssl") await benchBackend(openssl.backend, raw, size);
    await benchBackend(webcrypto, raw, size);
    await benchNode(raw, size);
  }
  if (openssl.backend.kind === "openssl") await benchSession(openssl.backend, raw, 1400);
  await benchSession(webcrypto, raw, 1400);
  if (JSON_OUT) console.log(JSON.stringify(rows, null, 1));
}
