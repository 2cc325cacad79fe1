/**
 * A hostile `vpn` server for tests: it completes real handshakes under the key in `VPN_KEY` but assigns
 * what the test asks for (any prefix, any MTU the wire can carry), to check what a client accepts.
 * Run in a test host: `hostile_server.ts PORT ADDRESS/PREFIX MTU`; prints `listening` once bound and
 * `responded N` after each response it sends.
 */
import { deriveHandshakeKey } from "../../src/protocol/keys.ts";
import { keyFromBase64 } from "../../src/config/key_file.ts";
import { randomIndex, Responder } from "../../src/protocol/handshake.ts";

const [port, cidr, mtu] = Deno.args;
const [address, prefix] = cidr.split("/");
const key = await deriveHandshakeKey(keyFromBase64(Deno.env.get("VPN_KEY") ?? "", "VPN_KEY"));
const responder = new Responder();
responder.setKeys([key]);
const socket = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: Number(port) });
console.log("listening");
let sent = 0;
for await (const [datagram, from] of socket) {
  const init = await responder.openInitiation(datagram);
  if (!init.ok) {
    console.log(`dropped ${init.reason}`);
    continue;
  }
  const r = await responder.respond(init.value, {
    senderIndex: randomIndex(),
    params: {
      ipv4: { address, prefix: Number(prefix) },
      ipv6: null,
      mtu: Number(mtu),
      keepaliveSeconds: 25,
    },
  });
  if (!r.ok) continue;
  await socket.send(r.value.message, from);
  console.log(`responded ${++sent}`);
}
