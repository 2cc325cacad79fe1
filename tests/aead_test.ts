import {
  deepEqual as assertDeepEquals,
  equal as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import type { AeadBackend, PacketAead } from "../src/protocol/aead.ts";
import { AeadUnavailableError, selectAeadBackend } from "../src/dataplane/aead_select.ts";
import { createWebCryptoBackend } from "../src/dataplane/aead_webcrypto.ts";
import { createOpenSslBackend } from "../src/dataplane/aead_openssl.ts";
import { LIBCRYPTO_NAMES, LibcryptoUnavailableError, loadLibcrypto } from "../ffi/libcrypto.ts";

const openssl = (await selectAeadBackend("openssl")).backend;
const webcrypto = (await selectAeadBackend("webcrypto")).backend;
const MAX = 1420;

async function settle<T>(r: T | Promise<T>): Promise<T> {
  return r instanceof Promise ? await r : r;
}

function packet(len: number, counter: number, index = 0xa1b2c3d4): Uint8Array {
  const b = new Uint8Array(13 + len + 16 + 7); // spare bytes past the tag must stay untouched
  b[0] = 3;
  new DataView(b.buffer).setUint32(1, index);
  new DataView(b.buffer).setBigUint64(5, BigInt(counter));
  crypto.getRandomValues(b.subarray(13, 13 + len));
  return b;
}

async function keyPair(raw: Uint8Array): Promise<[PacketAead, PacketAead]> {
  return [await openssl.createKey(raw), await webcrypto.createKey(raw)];
}

Deno.test("auto selects openssl here; explicit choices honoured", async () => {
  assertEquals((await selectAeadBackend("auto")).backend.kind, "openssl");
  assertEquals((await selectAeadBackend("auto")).fallbackReason, undefined);
  assertEquals(openssl.kind, "openssl");
  assertEquals(webcrypto.kind, "webcrypto");
});

Deno.test("cross-check every size 0..1420: seal with one backend, open with the other, identical bytes", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const [o, w] = await keyPair(raw);
  try {
    for (let len = 0; len <= MAX; len++) {
      const counter = len * 7919 + 1;
      const a = packet(len, counter);
      const plain = a.slice();
      const b = a.slice();
      o.sealOne(a, len);
      await w.sealOne(b, len);
      assertDeepEquals(a, b, `ciphertext differs at size ${len}`);
      assertEquals(a[13 + len + 16], plain[13 + len + 16], "wrote past the tag");
      if (len > 0) assert(a.subarray(13, 13 + len).some((x, i) => x !== plain[13 + i]), "not encrypted");
      const c = a.slice();
      assertEquals(await w.openOne(a, 13 + len + 16), len, `webcrypto open size ${len}`);
      assertEquals(o.openOne(c, 13 + len + 16), len, `openssl open size ${len}`);
      assertDeepEquals(a.subarray(0, 13 + len), plain.subarray(0, 13 + len));
      assertDeepEquals(c.subarray(0, 13 + len), plain.subarray(0, 13 + len));
    }
  } finally {
    o.dispose();
    w.dispose();
  }
});

Deno.test("a batch sealed and opened packet by packet, both backends, mixed sizes, one corrupted entry", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  for (
    const [sealer, opener] of [[openssl, webcrypto], [webcrypto, openssl]] as [AeadBackend, AeadBackend][]
  ) {
    const s = await sealer.createKey(raw), o = await opener.createKey(raw);
    const sizes = Array.from({ length: 64 }, (_, i) => (i * 97) % (MAX + 1));
    const bufs = sizes.map((n, i) => packet(n, i));
    const plain = bufs.map((b) => b.slice());
    // As the data path does: every packet of the batch issued before any is awaited.
    await Promise.all(bufs.map((b, i) => settle(s.sealOne(b, sizes[i]))));
    bufs[10][13] ^= 1;
    const lens = await Promise.all(bufs.map((b, i) => settle(o.openOne(b, sizes[i] + 29))));
    for (let i = 0; i < bufs.length; i++) {
      if (i === 10) assertEquals(lens[i], -1);
      else {
        assertEquals(lens[i], sizes[i]);
        assertDeepEquals(bufs[i].subarray(0, 13 + sizes[i]), plain[i].subarray(0, 13 + sizes[i]));
      }
    }
    s.dispose();
    o.dispose();
  }
});

Deno.test("every single-bit flip, truncation, extension and wrong key fail to open", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const [o, w] = await keyPair(raw);
  const other = await openssl.createKey(crypto.getRandomValues(new Uint8Array(32)));
  const len = 40, total = 13 + len + 16;
  const sealed = packet(len, 99);
  o.sealOne(sealed, len);
  for (let bit = 0; bit < total * 8; bit++) {
    const a = sealed.slice();
    a[bit >> 3] ^= 1 << (bit & 7);
    assertEquals(o.openOne(a.slice(), total), -1, `openssl accepted flipped bit ${bit}`);
    if (bit % 8 === 0) assertEquals(await w.openOne(a, total), -1, `webcrypto accepted flipped bit ${bit}`);
  }
  for (const n of [0, 1, 13, 28, total - 1, total + 1]) {
    assertEquals(o.openOne(sealed.slice(), n), -1, `openssl accepted length ${n}`);
    assertEquals(await w.openOne(sealed.slice(), n), -1, `webcrypto accepted length ${n}`);
  }
  assertEquals(o.openOne(sealed.slice(), sealed.length + 1), -1, "length beyond the buffer");
  assertEquals(other.openOne(sealed.slice(), total), -1, "wrong key");
  assertEquals(o.openOne(sealed.slice(), total), len, "original still opens");
  o.dispose();
  w.dispose();
  other.dispose();
});

Deno.test("misuse: short buffer, bad key length, use after dispose", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  for (const b of [openssl, webcrypto]) {
    const k = await b.createKey(raw);
    let threw = false;
    try {
      await settle(k.sealOne(new Uint8Array(20), 0));
    } catch (e) {
      threw = e instanceof RangeError;
    }
    assert(threw, `${b.kind}: seal into a too-small buffer must throw RangeError`);
    k.dispose();
    await rejects(async () => await settle(k.sealOne(packet(1, 1), 1)), `${b.kind}: use after dispose`);
    await rejects(() => b.createKey(new Uint8Array(16)), `${b.kind}: 16-byte key`);
  }
});

Deno.test("buffers that are views into a larger arena work (byteOffset != 0)", async () => {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const [o, w] = await keyPair(raw);
  const arena = new Uint8Array(4 * 1500);
  const slot = arena.subarray(1500 + 3, 3000);
  slot.set(packet(100, 5).subarray(0, 113));
  const copy = slot.slice();
  o.sealOne(slot, 100);
  assertEquals(await w.openOne(slot, 129), 100);
  assertDeepEquals(slot.subarray(0, 113), copy.subarray(0, 113));
  assert(arena.subarray(0, 1503).every((x) => x === 0), "wrote before the slot");
  o.dispose();
  w.dispose();
});

Deno.test("explicit openssl without FFI permission is a typed error; auto falls back", async () => {
  const code = `
    import { selectAeadBackend, AeadUnavailableError } from "${new URL(
    "../src/dataplane/aead_select.ts",
    import.meta.url,
  )}";
    const auto = await selectAeadBackend("auto");
    let typed = false;
    try { await selectAeadBackend("openssl"); } catch (e) { typed = e instanceof AeadUnavailableError; }
    console.log(JSON.stringify({ kind: auto.backend.kind, reason: auto.fallbackReason ?? "", typed }));`;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  let out: Deno.CommandOutput;
  try {
    await Deno.writeTextFile(file, code);
    out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", file], // everything but FFI
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(file);
  }
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(r.kind, "webcrypto");
  assert(/ffi/i.test(r.reason), r.reason);
  assert(r.typed);
  assert(new AeadUnavailableError("openssl", "x").message.includes("openssl"));
  assertEquals(createWebCryptoBackend().kind, "webcrypto");
});

Deno.test("libcrypto candidates: OpenSSL 3, the unversioned link, then 1.1, in that order", () => {
  assertDeepEquals([...LIBCRYPTO_NAMES], ["libcrypto.so.3", "libcrypto.so", "libcrypto.so.1.1"]);
});

Deno.test("a missing name and a library without the EVP symbols are skipped; the real one seals right", async () => {
  // libc.so.6 opens but has no EVP_* symbol: it must be skipped, not half-bound.
  const names = ["libvpn-absent.so.9", "libc.so.6", "libcrypto.so.3"];
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const o = await createOpenSslBackend(names).createKey(raw), w = await webcrypto.createKey(raw);
  try {
    const a = packet(300, 42), b = a.slice();
    o.sealOne(a, 300);
    await w.sealOne(b, 300);
    assertDeepEquals(a, b);
  } finally {
    o.dispose();
    w.dispose();
  }
  let err: unknown;
  try {
    createOpenSslBackend(names.slice(0, 2));
  } catch (e) {
    err = e;
  }
  assert(err instanceof LibcryptoUnavailableError, String(err));
  assert(/libvpn-absent\.so\.9: .*cannot open/.test(err.message), err.message);
  assert(/libc\.so\.6: .*EVP_/.test(err.message), err.message);
  assert(err.message.includes("1.1"), "the advice names OpenSSL 1.1 too");
});

Deno.test("a library that fails the self-test is skipped with its reason; the next one is taken", () => {
  const seen: string[] = [];
  let calls = 0;
  const lib = loadLibcrypto(["libcrypto.so.3", "libcrypto.so"], (L) => {
    seen.push(typeof L.EVP_aes_256_gcm);
    if (calls++ === 0) throw new Error("known answer mismatch");
  });
  try {
    assertEquals(lib.name, "libcrypto.so");
    assertDeepEquals(lib.skipped, ["libcrypto.so.3: known answer mismatch"]);
    assertDeepEquals(seen, ["function", "function"]);
  } finally {
    lib.close();
  }
});
