/**
 * Test tool run inside a test host: sends fresh, valid initiations under one key to HOST:PORT, as fast
 * as it can build them, for MAX_MS; prints "sent N" at the end. What a key holder (or a peer racing its
 * own revocation) can send. The key comes in FLOOD_KEY (base64), never on the command line.
 *
 *   deno run -A --config deno.json tests/netns/initiation_flood.ts HOST PORT MAX_MS [REQUESTED_ADDRESS]
 */
import { createInitiation, InitiationClock, randomIndex } from "../../src/protocol/handshake.ts";
import { deriveHandshakeKey } from "../../src/protocol/keys.ts";
import { keyFromBase64 } from "../../src/config/key_file.ts";

const [host, port, maxMs, requested] = Deno.args;
const key = await deriveHandshakeKey(keyFromBase64(Deno.env.get("FLOOD_KEY") ?? "", "FLOOD_KEY"));
const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
const clock = new InitiationClock();
const deadline = Date.now() + Number(maxMs);
let sent = 0;
console.log("flooding");
while (Date.now() < deadline) {
  const init = await createInitiation(key, {
    senderIndex: randomIndex(),
    requestedAddress: requested ?? null,
    timestamp: clock.next(),
  });
  await sock.send(init.message, { transport: "udp", hostname: host, port: Number(port) });
  sent++;
}
sock.close();
console.log(`sent ${sent}`);
