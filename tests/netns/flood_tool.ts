/**
 * Handshake flood generator the flood tests and the handshake bench run inside a namespace:
 *   deno run -A flood_tool.ts MODE HOST PORT DURATION_MS MAX_COUNT [ARG]
 * MODE junk: initiation-sized datagrams with the initiation's type and version, random bytes after them;
 *      keyid HEX16: the same with this key id (e.g. one captured from a real initiation);
 *      replay HEX: this datagram (a captured initiation) over and over;
 *      valid KEY_B64: fresh initiations under this key, as a key holder can make them;
 *      future KEY_B64: initiations under this key whose timestamp is a year ahead (key id of today);
 *      wg-junk: WireGuard-initiation-sized junk (148 bytes, type 1), for the wireguard-go comparison.
 * Sends in sendmmsg/GSO batches (about 200k datagrams/s on the test machine) until DURATION_MS or
 * MAX_COUNT (or SIGTERM), counts what comes back, and prints "sent N received R responses S cookies C".
 */
import { UdpSocket } from "../../ffi/udp_socket.ts";
import { endpointFromParts } from "../../src/net/endpoint.ts";
import {
  INITIATION_LENGTH,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  PROTOCOL_VERSION,
} from "../../src/protocol/constants.ts";
import { writeMac1 } from "../../src/protocol/cookie.ts";
import { keyIdPeriod, writeWireKeyId } from "../../src/protocol/key_id.ts";
import { deriveHandshakeKey, type HandshakeKey } from "../../src/protocol/keys.ts";
import { encodeInitiationHeader, encodeInitiationPayload, INITIATION } from "../../src/protocol/wire.ts";

const BATCH = 256;
/** WireGuard's handshake initiation: 148 bytes, a little-endian u32 type 1. */
const WG_INITIATION_LENGTH = 148;
const SLOT = 2048;

function batch() {
  return {
    capacity: BATCH,
    slotSize: SLOT,
    data: new Uint8Array(BATCH * SLOT),
    lens: new Int32Array(BATCH),
    endpointData: new Uint8Array(BATCH * 18),
  };
}

const fromHex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));

/** An initiation under `key` with timestamp `tsMs` but the key id of now (what an attacker would send). */
async function initiation(key: HandshakeKey, tsMs: number, nowMs: number): Promise<Uint8Array> {
  const keyId = new Uint8Array(8);
  writeWireKeyId(key, keyIdPeriod(nowMs), keyId, 0);
  const eph = crypto.getRandomValues(new Uint8Array(32)), nonce = crypto.getRandomValues(new Uint8Array(12));
  const idx = crypto.getRandomValues(new Uint32Array(1))[0];
  const header = encodeInitiationHeader(idx, keyId, eph, nonce);
  const payload = encodeInitiationPayload({ timestamp: Math.floor(tsMs * 1000), requestedAddress: null });
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: header }, key.aead, payload),
  );
  const m = new Uint8Array(INITIATION_LENGTH);
  m.set(header);
  m.set(sealed, header.length);
  writeMac1(key, m);
  return m;
}

async function main(): Promise<void> {
  const [mode, host, portText, durText, maxText, arg] = Deno.args;
  const duration = Number(durText), max = Number(maxText);
  if (!(duration > 0 && duration <= 120_000 && max > 0 && max <= 100_000_000)) {
    throw new Error("DURATION_MS must be 1..120000 and MAX_COUNT 1..1e8");
  }
  const to = endpointFromParts(host, Number(portText));
  const sock = UdpSocket.open(
    host.includes(":") ? 6 : 4,
    endpointFromParts(host.includes(":") ? "::" : "0.0.0.0", 0),
  );
  const out = batch(), inb = batch();
  const wg = mode === "wg-junk";
  const size = wg ? WG_INITIATION_LENGTH : INITIATION_LENGTH;
  for (let i = 0; i < BATCH; i++) {
    out.endpointData.set(to, i * 18);
    out.lens[i] = size;
  }
  const key = mode === "valid" || mode === "future"
    ? await deriveHandshakeKey(Uint8Array.from(atob(arg), (c) => c.charCodeAt(0)))
    : null;
  const template = mode === "replay" ? fromHex(arg) : null;
  const keyId = mode === "keyid" ? fromHex(arg) : null;
  let sent = 0, received = 0, responses = 0, cookies = 0, batches = 0;
  let deadline = Date.now() + duration;
  Deno.addSignalListener("SIGTERM", () => deadline = 0);
  while (sent < max && Date.now() < deadline) {
    // A turn of the event loop now and then, so SIGTERM is seen (about every 15 ms at full speed).
    if (++batches % 16 === 0) await new Promise((r) => setTimeout(r, 0));
    const n = Math.min(BATCH, max - sent);
    if (key) {
      const now = Date.now();
      const ts = mode === "future" ? now + 365 * 86_400_000 : now;
      const made = await Promise.all(Array.from({ length: n }, () => initiation(key, ts, now)));
      made.forEach((m, i) => out.data.set(m, i * SLOT));
    } else {
      for (let i = 0; i < n; i++) {
        const s = out.data.subarray(i * SLOT, i * SLOT + size);
        if (template) {
          if (sent === 0) s.set(template.subarray(0, INITIATION_LENGTH));
          out.lens[i] = template.length;
          continue;
        }
        crypto.getRandomValues(s);
        if (wg) {
          s.set([1, 0, 0, 0]);
          continue;
        }
        s[INITIATION.type] = MSG_INITIATION;
        s[INITIATION.version] = PROTOCOL_VERSION;
        if (keyId) s.set(keyId, INITIATION.keyId);
      }
    }
    sent += sock.sendBatch(out, n);
    for (let r = sock.receiveBatch(inb); r > 0; r = sock.receiveBatch(inb)) {
      for (let i = 0; i < r; i++) {
        received++;
        const t = inb.data[i * SLOT];
        if (t === MSG_RESPONSE) responses++;
        else if (t === MSG_COOKIE_REPLY) cookies++;
      }
    }
  }
  sock.close();
  console.log(`sent ${sent} received ${received} responses ${responses} cookies ${cookies}`);
}

if (import.meta.main) await main();
