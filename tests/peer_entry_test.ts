import { assertEquals } from "./assert.ts";
import { appendPeerEntry, removePeerEntry } from "../src/config/peer_entry.ts";

const ENTRY = {
  name: "laptop",
  address: "10.0.0.2",
  keyFile: "peers/laptop.key",
  routes: ["192.168.50.0/24"],
};

Deno.test("appendPeerEntry keeps the old text byte for byte; removePeerEntry undoes it exactly", () => {
  for (const old of ["", "[server]\n# comment\nmtu = 1400\n", "[server]\nmtu = 1400", "# only a comment\n"]) {
    const added = appendPeerEntry(old, ENTRY);
    assertEquals(added.slice(0, old.length), old);
    const fixed = old === "" || old.endsWith("\n") ? old : old + "\n";
    assertEquals(removePeerEntry(added, 0), fixed);
  }
});

Deno.test("removePeerEntry cuts one table in the middle and keeps comments and other tables", () => {
  const text = `[server]\n\n[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\n\n# the phone\n` +
    `[[server.peers]]\nname = "b"\naddress = "10.0.0.3"\n\n# client side\n[client]\ntun = "x"\n`;
  assertEquals(
    removePeerEntry(text, 0),
    `[server]\n\n# the phone\n[[server.peers]]\nname = "b"\naddress = "10.0.0.3"\n\n# client side\n[client]\ntun = "x"\n`,
  );
  assertEquals(
    removePeerEntry(text, 1),
    `[server]\n\n[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\n\n# the phone\n# client side\n[client]\ntun = "x"\n`,
  );
  assertEquals(removePeerEntry(text, 2), null);
});
