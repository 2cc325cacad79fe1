/**
 * The full-tunnel settings: the config message the server pushes (a total parser), and the new config keys
 * (dns, dns_search, peers, kill_switch) with their errors.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import { ConfigError, loadClientOptions, loadServerOptions } from "../src/config/config.ts";
import { decodeConfigMessage, encodeConfigMessage } from "../src/protocol/wire.ts";
import { CONFIG_MAX_LENGTH, CTRL_CONFIG } from "../src/protocol/constants.ts";
import { isDomainName } from "../src/net/domain_name.ts";
import { formatHostPort } from "../src/net/host_port.ts";

function withConfig<T>(text: string, fn: (path: string) => T): T {
  const dir = Deno.makeTempDirSync({ prefix: "vpn-ft-config-" });
  Deno.writeTextFileSync(`${dir}/vpn.toml`, text);
  try {
    return fn(`${dir}/vpn.toml`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("config message: round trip, and every truncation or trailing byte is refused", () => {
  const c = { dns: ["10.0.0.1", "fd00::53"], search: ["corp.example", "lab.example."] };
  const m = encodeConfigMessage(c);
  assertEquals(m[0], CTRL_CONFIG);
  assertEquals(decodeConfigMessage(m, m.length), c);
  assertEquals(decodeConfigMessage(encodeConfigMessage({ dns: [], search: [] }), 3), { dns: [], search: [] });
  for (let n = 0; n < m.length; n++) assertEquals(decodeConfigMessage(m, n), "payload", `length ${n}`);
  const longer = new Uint8Array(m.length + 1);
  longer.set(m);
  assertEquals(decodeConfigMessage(longer, longer.length), "payload");
});

Deno.test("config message: hostile contents are refused, random bytes never throw", () => {
  const bad = [
    [CTRL_CONFIG, 9, ...new Array(9 * 5).fill(4), 0], // more resolvers than allowed
    [CTRL_CONFIG, 1, 5, 1, 2, 3, 4, 0], // unknown family
    [CTRL_CONFIG, 0, 1, 3, 0x61, 0x0a, 0x62], // newline inside a domain
    [CTRL_CONFIG, 0, 1, 3, 0x61, 0x20, 0x62], // space inside a domain
    [CTRL_CONFIG, 0, 1, 0], // empty domain
    [CTRL_CONFIG + 1, 0, 0], // other type
  ];
  for (const b of bad) assertEquals(decodeConfigMessage(new Uint8Array(b), b.length), "payload", String(b));
  const buf = new Uint8Array(CONFIG_MAX_LENGTH + 8);
  for (let i = 0; i < 20_000; i++) {
    const n = Math.floor(Math.random() * buf.length);
    crypto.getRandomValues(buf.subarray(0, n));
    buf[0] = CTRL_CONFIG;
    const r = decodeConfigMessage(buf, n);
    if (typeof r !== "string") {
      for (const d of r.search) assert(isDomainName(d), d);
    }
  }
});

Deno.test("domain names: only what can safely go on a resolv.conf line", () => {
  for (const ok of ["corp.example", "a", "x-1.y_2.example.", "a".repeat(63) + ".b"]) {
    assert(isDomainName(ok), ok);
  }
  for (
    const bad of [
      "",
      ".",
      "a..b",
      "-a.b",
      "a-.b",
      "a b",
      "a\nnameserver 1.2.3.4",
      "a".repeat(64),
      "é.example",
    ]
  ) {
    assert(!isDomainName(bad), bad);
  }
});

Deno.test("server dns and dns_search load, and bad ones name the field", () => {
  const o = withConfig(
    '[server]\ndns = ["10.0.0.1", "FD00::0053"]\ndns_search = ["corp.example"]\n',
    (p) => loadServerOptions({ config: p }, {}),
  );
  assertEquals([o.dns, o.dnsSearch], [["10.0.0.1", "fd00::53"], ["corp.example"]]);
  assertEquals(loadServerOptions({}, {}).dns, []);
  const err = (text: string) =>
    withConfig(text, (p) => assertThrows(() => loadServerOptions({ config: p }, {}), ConfigError).message);
  assertMatch(
    err('[server]\ndns = ["10.0.0.0/24"]\n'),
    /vpn\.toml:2: server\.dns: .*an IPv4 or IPv6 address/,
  );
  assertMatch(err('[server]\ndns = "10.0.0.1"\n'), /server\.dns: .*a list of at most 8/);
  assertMatch(err('[server]\ndns_search = ["a b"]\n'), /server\.dns_search: .*a domain name/);
  const many = JSON.stringify(new Array(8).fill("x".repeat(60) + "." + "y".repeat(60)));
  assertMatch(err(`[server]\ndns_search = ${many}\n`), /server\.dns_search: .*characters together/);
});

Deno.test("client: --peer repeated or peers = [...] give servers in order; kill_switch and dns = false", () => {
  const flags = { peer: ["192.0.2.1:51820", "vpn2.example:51821"] };
  const o = loadClientOptions(flags, {});
  assertEquals(o.servers.map(formatHostPort), ["192.0.2.1:51820", "vpn2.example:51821"]);
  assertEquals(formatHostPort(o.peer), "192.0.2.1:51820");
  assertEquals([o.dns, o.killSwitch], [true, false]);
  const fromFile = withConfig(
    '[client]\npeers = ["192.0.2.1:51820", "[2001:db8::1]:51820"]\nkill_switch = true\ndns = false\n',
    (p) => loadClientOptions({ config: p }, {}),
  );
  assertEquals(fromFile.servers.map(formatHostPort), ["192.0.2.1:51820", "[2001:db8::1]:51820"]);
  assertEquals([fromFile.dns, fromFile.killSwitch], [false, true]);
  assertEquals(
    loadClientOptions({ peer: ["192.0.2.1:1"], "no-dns": true, "kill-switch": true }, {}).dns,
    false,
  );
  const err = (text: string) =>
    withConfig(text, (p) => assertThrows(() => loadClientOptions({ config: p }, {}), ConfigError).message);
  assertMatch(err('[client]\npeer = "a:1"\npeers = ["b:1"]\n'), /give only one of peer and peers/);
  assertMatch(err("[client]\npeers = []\n"), /client\.peers: .*a list of 1 to 16/);
  assertMatch(err('[client]\npeers = ["nope"]\n'), /client\.peers: got "nope"; allowed: HOST:PORT/);
  assertMatch(err('[client]\npeer = "a:1"\nkill_switch = "yes"\n'), /client\.kill_switch: .*true or false/);
});
