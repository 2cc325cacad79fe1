/** The client's server list: failover order, and names looked up again at each retry (with a fake resolver). */
import { assertEquals } from "./assert.ts";
import { ServerList } from "../src/roles/server_list.ts";
import { endpointFromParts, endpointToString } from "../src/net/endpoint.ts";
import { type HostPort, parseHostPort } from "../src/net/host_port.ts";

const hp = (s: string) => parseHostPort(s) as HostPort;

Deno.test("server list: next() walks the servers in order and wraps round", async () => {
  const list = await ServerList.create([hp("192.0.2.1:51820"), hp("[2001:db8::1]:51821")]);
  assertEquals([list.length, endpointToString(list.endpoint), list.name], [
    2,
    "192.0.2.1:51820",
    "192.0.2.1:51820",
  ]);
  assertEquals(endpointToString(list.next()), "[2001:db8::1]:51821");
  assertEquals(endpointToString(list.next()), "192.0.2.1:51820");
});

Deno.test("server list: refresh() follows a name to its new address, keeps the old one on failure", async () => {
  let answer: string | Error = "192.0.2.7";
  let lookups = 0;
  const resolve = (text: string) => {
    lookups++;
    if (answer instanceof Error) return Promise.reject(answer);
    return Promise.resolve(endpointFromParts(answer, Number(text.split(":")[1])));
  };
  const list = await ServerList.create([hp("vpn.example:51820"), hp("192.0.2.99:1")], resolve);
  assertEquals(endpointToString(list.endpoint), "192.0.2.7:51820");
  assertEquals(await list.refresh(), null); // unchanged
  answer = "192.0.2.8";
  assertEquals(endpointToString((await list.refresh())!), "192.0.2.8:51820");
  assertEquals(endpointToString(list.endpoints[0]), "192.0.2.8:51820");
  answer = new Error("no network");
  assertEquals(await list.refresh(), null);
  assertEquals(endpointToString(list.endpoint), "192.0.2.8:51820");
  const before = lookups;
  list.next();
  assertEquals(await list.refresh(), null); // an IP literal is never looked up
  assertEquals(lookups, before);
});
