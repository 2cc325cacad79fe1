/** The three-namespace bad-path harness: its controls change the path while it runs, and it cleans up. */
import { assert, assertEquals, assertMatch, assertRejects } from "./assert.ts";
import { listNamespaces } from "./netns/hosts.ts";
import { CLIENT_ADDRESS, RouterLab, SERVER_ADDRESS } from "./netns/router_lab.ts";

Deno.test("router lab: forwarding, black hole, loss, duplicates and clear act at once; nothing is left", async () => {
  let names: string[];
  {
    await using path = await RouterLab.create();
    names = path.net.namespaces();
    assert(await path.client.ping(SERVER_ADDRESS), "the router does not forward");
    assertMatch(await path.client.runOk(["ip", "route", "show", "default"]), /via 10\.204\.1\.1/);
    await path.blackhole("up");
    assert(!(await path.client.ping(SERVER_ADDRESS)), "the black hole let a ping through");
    await path.clear();
    assert(await path.client.ping(SERVER_ADDRESS), "clear did not lift the black hole");
    await path.loss(100, "down");
    assert(!(await path.server.ping(CLIENT_ADDRESS)), "100 % loss let a ping through");
    await path.clear();
    await path.duplicate(100, "up");
    const dup = await path.client.run(["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", SERVER_ADDRESS]);
    assertMatch(dup.stdout, /DUP!/);
    await assertRejects(() => path.loss(101), RangeError);
  }
  const left = await listNamespaces();
  assertEquals(names.filter((n) => left.includes(n)), []);
});
