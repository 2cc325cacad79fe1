import { assert, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import { ConfigError, loadClientOptions, loadServerOptions } from "../src/config/config.ts";
import { formatCidr } from "../src/net/cidr.ts";
import { keyToBase64 } from "../src/config/key_file.ts";
import { clientSettingsNeedingRestart } from "../src/config/settings_diff.ts";

const KEY_A = "kOLM0yzVssSAT2Q+KcHxm4s7T7nURwNPejZs45o0j0I=";
const KEY_B = "+Bz8pHlEJSjYpiTBYkjuGC7fuEB1harWcH7z9DUMl3I=";

function withConfig(text: string, fn: (path: string, dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "vpn-config-test-" });
  const path = `${dir}/vpn.toml`;
  // 0600: a config holding a key inline must not be readable by others.
  Deno.writeTextFileSync(path, text, { mode: 0o600 });
  try {
    fn(path, dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function configError(fn: () => unknown): string {
  return assertThrows(fn, ConfigError).message;
}

Deno.test("server defaults follow the design", () => {
  const o = loadServerOptions({}, {});
  assertEquals(o.listen, { hostname: "::", port: 51820 });
  assertEquals(o.tun, "vpn0");
  assertEquals(formatCidr(o.address), "10.0.0.1/24");
  assertEquals(o.mtu, 1420);
  assertEquals(o.key, { kind: "file", path: "/etc/vpn/vpn.key", source: "default" });
  assertEquals([o.crypto, o.udp, o.logLevel, o.forward, o.keepalive], ["auto", "auto", "info", false, 25]);
});

Deno.test("the example config.toml loads for server and client", () => {
  const s = loadServerOptions({ config: "config.toml" }, {});
  const line = Deno.readTextFileSync("config.toml").split("\n").findIndex((l) => l.startsWith("key_file")) +
    1;
  assertEquals(s.key, { kind: "file", path: "vpn.key", source: `config.toml:${line}: server.key_file` });
  assertEquals(s.peers, []);
  const c = loadClientOptions({ config: "config.toml", peer: "192.0.2.1:51820" }, {});
  assertEquals(c.peer, { hostname: "192.0.2.1", port: 51820 });
  assertEquals(c.keepalive, undefined);
});

Deno.test("precedence: flag > VPN_KEY > config > default", () => {
  withConfig(`[server]\nkey = "${KEY_A}"\nmtu = 1400\nport = 4000\n`, (path) => {
    const fromFile = loadServerOptions({ config: path }, {});
    assertEquals(fromFile.mtu, 1400);
    assertEquals(fromFile.listen.port, 4000);
    assertEquals(fromFile.key.kind === "inline" && keyToBase64(fromFile.key.key), KEY_A);
    const fromEnv = loadServerOptions({ config: path }, { VPN_KEY: KEY_B });
    assertEquals(fromEnv.key.kind === "inline" && keyToBase64(fromEnv.key.key), KEY_B);
    assertEquals(fromEnv.key.source, "VPN_KEY");
    const fromFlag = loadServerOptions({ config: path, key: KEY_A, mtu: "1300", port: "5000" }, {
      VPN_KEY: KEY_B,
    });
    assertEquals(fromFlag.key.kind === "inline" && keyToBase64(fromFlag.key.key), KEY_A);
    assertEquals(fromFlag.mtu, 1300);
    assertEquals(fromFlag.listen.port, 5000);
    const keyFileFlag = loadServerOptions({ config: path, "key-file": "/tmp/k" }, { VPN_KEY: KEY_B });
    assertEquals(keyFileFlag.key, { kind: "file", path: "/tmp/k", source: "--key-file" });
  });
});

Deno.test("key_file in a config is relative to the config's folder", () => {
  withConfig(`[client]\nkey_file = "c.key"\npeer = "[2001:db8::1]:51820"\n`, (path, dir) => {
    const c = loadClientOptions({ config: path }, {});
    assertEquals(c.key.kind === "file" && c.key.path, `${dir}/c.key`);
    assertEquals(c.peer, { hostname: "2001:db8::1", port: 51820 });
  });
});

Deno.test("bad flags name the flag, the value and what is allowed", () => {
  const cases: [Record<string, string | boolean | string[]>, RegExp][] = [
    [{ mtu: "100" }, /^--mtu: got "100"; allowed: an integer from 576 to 9000$/],
    [{ mtu: "abc" }, /^--mtu: got "abc"/],
    [{ port: "70000" }, /^--port: got "70000"; allowed: an integer from 1 to 65535$/],
    [{ port: "0" }, /^--port: got "0"/],
    [{ listen: "1.2.3.4" }, /^--listen: got "1.2.3.4"; allowed: HOST:PORT \(no port given\)$/],
    [
      { listen: "1.2.3.4:99999" },
      /^--listen: got "1.2.3.4:99999"; allowed: HOST:PORT \(port 99999 is out of range/,
    ],
    [{ listen: "::1:80" }, /write an IPv6 address in brackets/],
    [{ address: "10.0.0.1" }, /^--address: got "10.0.0.1"; allowed: an IPv4 address as ADDRESS\/PREFIX$/],
    [{ address: "10.0.0.300/24" }, /^--address: got "10.0.0.300\/24"/],
    [{ address: "10.0.0.1/33" }, /^--address: got "10.0.0.1\/33"/],
    [
      { tun: "a-very-long-interface-name" },
      /^--tun: got "a-very-long-interface-name"; allowed: an interface name of 1 to 15/,
    ],
    [{ key: "short" }, /^--key: not a key \(expected 32 bytes as 44 characters of base64/],
    [{ key: KEY_A, "key-file": "/x" }, /^--key and --key-file: give only one of them$/],
    [{ "log-level": "loud" }, /^--log-level: got "loud"; allowed: trace, debug, info, warn, error$/],
    [{ crypto: "rot13" }, /^--crypto: got "rot13"; allowed: auto, openssl, webcrypto$/],
    [{ udp: "tcp" }, /^--udp: got "tcp"; allowed: auto, batched, deno$/],
    [{ offload: "on" }, /^--offload: got "on"; allowed: auto, off$/],
    [{ nat: "" }, /^--nat: got ""/],
  ];
  for (const [flags, re] of cases) assertMatch(configError(() => loadServerOptions(flags, {})), re);
  assertMatch(configError(() => loadServerOptions({}, { VPN_KEY: "x" })), /^VPN_KEY: not a key/);
  assertMatch(configError(() => loadClientOptions({}, {})), /^--peer: missing/);
  assertMatch(
    configError(() => loadClientOptions({ peer: "h:1", route: ["10.0.0.0"] }, {})),
    /^--route: got "10.0.0.0"/,
  );
  assertMatch(
    configError(() => loadClientOptions({ peer: "h:1", keepalive: "-1" }, {})),
    /^--keepalive: got "-1"/,
  );
  assertMatch(
    configError(() => loadClientOptions({ peer: "h:1", address: "nope" }, {})),
    /^--address: got "nope"/,
  );
});

Deno.test("IPv6 inside the tunnel raises the MTU floor to 1280", () => {
  withConfig(`[server]\naddress6 = "fd00::1/64"\nmtu = 1000\n`, (path) => {
    assertMatch(
      configError(() => loadServerOptions({ config: path }, {})),
      /:3: server\.mtu: got 1000; allowed: an integer from 1280 to 9000$/,
    );
  });
});

Deno.test("bad config fields name file:line, the value and what is allowed", () => {
  const cases: [string, RegExp][] = [
    [`[server]\nmtu = 10\n`, /vpn\.toml:2: server\.mtu: got 10; allowed: an integer from 576 to 9000$/],
    [`[server]\nmtu = "big"\n`, /vpn\.toml:2: server\.mtu: got "big"/],
    [
      `[server]\n\nbogus = 1\n`,
      /vpn\.toml:3: server\.bogus: unknown setting; allowed in \[server\]: listen, /,
    ],
    [`[client]\nroutes = "x"\n`, /vpn\.toml:2: client\.routes: got "x"/],
    [`[other]\n`, /vpn\.toml: unknown section \[other\]; allowed: \[server\], \[client\]$/],
    [`[server\n`, /vpn\.toml:1: not valid TOML/],
    [`[server]\nforward = "yes"\n`, /vpn\.toml:2: server\.forward: got "yes"; allowed: true or false$/],
    [
      `[server]\nkey = "abc"\nkey_file = "x"\n`,
      /vpn\.toml:2: server\.key: give only one of key and key_file$/,
    ],
    [
      `[server]\naddress = "10.0.0.1/24"\n[[server.peers]]\nname = "a"\naddress = "10.9.0.2"\n`,
      /vpn\.toml:5: server\.peers\[0\]\.address: got "10\.9\.0\.2\/32"; allowed: an address inside the server's subnet 10\.0\.0\.1\/24$/,
    ],
    [
      `[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\n[[server.peers]]\nname = "b"\naddress = "10.0.0.2"\n`,
      /vpn\.toml:6: server\.peers\[1\]\.address: got "10\.0\.0\.2\/32"; allowed: an address no other peer has \(peer "a" has it\)$/,
    ],
    [
      `[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\nkey = "${KEY_A}"\n[[server.peers]]\nname = "b"\naddress = "10.0.0.3"\nkey = "${KEY_A}"\n`,
      /vpn\.toml:8: server\.peers\[1\]\.key: got "\(a key\)"; allowed: a key no other peer has/,
    ],
    [`[[server.peers]]\naddress = "10.0.0.2"\n`, /vpn\.toml:1: server\.peers\[0\]\.name: missing/],
    [
      `[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\ncolour = "red"\n`,
      /vpn\.toml:4: server\.peers\[0\]\.colour: unknown setting/,
    ],
    [
      `[[server.peers]]\nname = "a"\naddress = "10.0.0.0/24"\n`,
      /server\.peers\[0\]\.address: got "10\.0\.0\.0\/24"; allowed: a single address/,
    ],
  ];
  for (const [text, re] of cases) {
    withConfig(text, (path) => {
      const clientSide = text.includes("[client]");
      assertMatch(
        configError(() =>
          clientSide
            ? loadClientOptions({ config: path, peer: "h:1" }, {})
            : loadServerOptions({ config: path }, {})
        ),
        re,
      );
    });
  }
  assertMatch(
    configError(() => loadServerOptions({ config: "/nonexistent/vpn.toml" }, {})),
    /^--config \/nonexistent\/vpn\.toml: cannot read it: no such file$/,
  );
});

Deno.test("pinned peers load with their own keys", () => {
  withConfig(
    `[server]\naddress = "10.5.0.1/24"\n[[server.peers]]\nname = "laptop"\naddress = "10.5.0.10"\nkey = "${KEY_A}"\n` +
      `[[server.peers]]\nname = "phone"\naddress = "10.5.0.11/32"\n`,
    (path) => {
      const o = loadServerOptions({ config: path }, {});
      assertEquals(o.peers.map((p) => [p.name, formatCidr(p.address), p.key ? keyToBase64(p.key) : null]), [
        ["laptop", "10.5.0.10/32", KEY_A],
        ["phone", "10.5.0.11/32", null],
      ]);
    },
  );
});

Deno.test("a peer key file readable by others is refused", () => {
  withConfig(`[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\nkey_file = "a.key"\n`, (path, dir) => {
    Deno.writeTextFileSync(`${dir}/a.key`, KEY_A + "\n", { mode: 0o644 });
    Deno.chmodSync(`${dir}/a.key`, 0o644);
    const msg = configError(() => loadServerOptions({ config: path }, {}));
    assertMatch(
      msg,
      /vpn\.toml:4: server\.peers\[0\]\.key_file: key file .*a\.key: mode 0644 lets group or others read it/,
    );
    Deno.chmodSync(`${dir}/a.key`, 0o600);
    assert(loadServerOptions({ config: path }, {}).peers[0].key);
  });
});

Deno.test("peer routes: overlapping another peer's route or the overlay subnet is an error naming both", () => {
  const peer = (name: string, addr: string, routes: string) =>
    `[[server.peers]]\nname = "${name}"\naddress = "${addr}"\nroutes = ${routes}\n`;
  withConfig(
    `[server]\n` + peer("a", "10.0.0.2", `["192.168.50.0/24"]`) + peer("b", "10.0.0.3", `["192.168.0.0/16"]`),
    (path) => {
      assertMatch(
        configError(() => loadServerOptions({ config: path }, {})),
        /:9: server\.peers\[1\]\.routes: got "192\.168\.0\.0\/16"; allowed: a network that does not overlap peer "a"'s route 192\.168\.50\.0\/24$/,
      );
    },
  );
  withConfig(`[server]\n` + peer("a", "10.0.0.2", `["10.0.0.128/25"]`), (path) => {
    assertMatch(
      configError(() => loadServerOptions({ config: path }, {})),
      /server\.peers\[0\]\.routes: got "10\.0\.0\.128\/25"; allowed: a network outside the overlay subnet 10\.0\.0\.0\/24 \(server\.address\)$/,
    );
  });
  withConfig(`[server]\n` + peer("a", "10.0.0.2", `["192.168.50.7/24", "fd00:50::/64"]`), (path) => {
    const o = loadServerOptions({ config: path }, {});
    assertEquals(o.peers[0].routes.map(formatCidr), ["192.168.50.0/24", "fd00:50::/64"]);
  });
});

Deno.test("shared_key, client_to_client, public_endpoint, hooks and client forward", () => {
  withConfig(
    `[server]\nshared_key = false\nclient_to_client = false\npublic_endpoint = "vpn.example.com:51820"\n` +
      `post_up = [["nft", "-f", "up.nft"]]\npre_down = [["sh", "-c", "echo bye"]]\n` +
      `[client]\nforward = true\npost_up = [["true"]]\n`,
    (path) => {
      const s = loadServerOptions({ config: path }, {});
      assertEquals([s.sharedKey, s.clientToClient], [false, false]);
      assertEquals(s.publicEndpoint, { hostname: "vpn.example.com", port: 51820 });
      assertEquals(s.postUp, [["nft", "-f", "up.nft"]]);
      assertEquals(s.preDown, [["sh", "-c", "echo bye"]]);
      const c = loadClientOptions({ config: path, peer: "h:1" }, {});
      assertEquals([c.forward, c.postUp, c.preDown], [true, [["true"]], []]);
    },
  );
  // Peers listed and no key configured anywhere (no default key file either): only listed peers.
  withConfig(`[server]\n[[server.peers]]\nname = "a"\naddress = "10.0.0.2"\nkey = "${KEY_A}"\n`, (path) => {
    assertEquals(loadServerOptions({ config: path }, {}).sharedKey, false);
    assertEquals(loadServerOptions({ config: path }, { VPN_KEY: KEY_B }).sharedKey, true);
  });
  assertEquals(loadServerOptions({}, {}).sharedKey, true);
  for (const bad of [`post_up = "ls"`, `post_up = [[]]`, `post_up = [["ls", 1]]`, `pre_down = [[""]]`]) {
    withConfig(`[server]\n${bad}\n`, (path) => {
      assertMatch(configError(() => loadServerOptions({ config: path }, {})), /allowed: a list of commands/);
    });
  }
});

Deno.test("client accept_network: default empty, TOML list, repeatable flag over config, bad values named", () => {
  assertEquals(loadClientOptions({ peer: "192.0.2.1:51820" }, {}).acceptNetwork, []);
  withConfig(
    `[client]\npeer = "192.0.2.1:1"\naccept_network = ["192.168.77.200/25", "fd00:77::/64"]\n`,
    (path) => {
      const c = loadClientOptions({ config: path }, {});
      assertEquals(c.acceptNetwork.map(formatCidr), ["192.168.77.128/25", "fd00:77::/64"]);
      const f = loadClientOptions({ config: path, "accept-network": ["8.0.0.0/8", "100.64.0.0/10"] }, {});
      assertEquals(f.acceptNetwork.map(formatCidr), ["8.0.0.0/8", "100.64.0.0/10"]);
      const next = loadClientOptions({ config: path, "accept-network": ["8.0.0.0/8"] }, {});
      assertEquals(clientSettingsNeedingRestart(c, next).map((x) => x.setting), ["accept_network"]);
    },
  );
  assertMatch(
    configError(() => loadClientOptions({ peer: "192.0.2.1:1", "accept-network": ["8.0.0.0/33"] }, {})),
    /^--accept-network: /,
  );
});

Deno.test("client prefix bounds: defaults, flag over config, bad values named", () => {
  const d = loadClientOptions({ peer: "192.0.2.1:51820" }, {});
  assertEquals([d.acceptPrefix4, d.acceptPrefix6], [{ min: 8, max: 30 }, { min: 64, max: 126 }]);
  withConfig(
    `[client]\npeer = "192.0.2.1:1"\naccept_prefix4 = "16-24"\naccept_prefix6 = "48-64"\n`,
    (path) => {
      const c = loadClientOptions({ config: path }, {});
      assertEquals([c.acceptPrefix4, c.acceptPrefix6], [{ min: 16, max: 24 }, { min: 48, max: 64 }]);
      const f = loadClientOptions({ config: path, "accept-prefix4": "1-32" }, {});
      assertEquals(f.acceptPrefix4, { min: 1, max: 32 });
    },
  );
  for (const bad of ["30-8", "8-33", "8", "a-b", "-1-30"]) {
    assertMatch(
      configError(() => loadClientOptions({ peer: "192.0.2.1:1", "accept-prefix4": bad }, {})),
      /^--accept-prefix4: got .*; allowed: MIN-MAX prefix lengths from 0 to 32/,
    );
  }
  assertMatch(
    configError(() => loadClientOptions({ peer: "192.0.2.1:1", "accept-prefix6": "64-129" }, {})),
    /^--accept-prefix6: .* from 0 to 128/,
  );
});

Deno.test("a config file holding a key inline gets the key-file rules: mode 0600/0400, our own", () => {
  const cases = [
    [`[server]\nmtu = 1400\nkey = "${KEY_A}"\n`, "server.key", 3, "server"],
    [`[client]\npeer = "192.0.2.1:1"\nkey = "${KEY_A}"\n`, "client.key", 3, "client"],
    [
      `[server]\n[[server.peers]]\nname = "a"\naddress = "10.0.0.5"\nkey = "${KEY_B}"\n`,
      "server.peers[0].key",
      5,
      "server",
    ],
  ] as const;
  for (const [text, label, line, role] of cases) {
    withConfig(text, (path) => {
      const load = () =>
        role === "server" ? loadServerOptions({ config: path }, {}) : loadClientOptions({ config: path }, {});
      load(); // 0600, ours
      Deno.chmodSync(path, 0o400);
      load();
      for (const mode of [0o640, 0o604, 0o644]) {
        Deno.chmodSync(path, mode);
        assertEquals(
          configError(load),
          `${path}:${line}: ${label} (a key inline in a config file): mode 0${
            mode.toString(8)
          } lets group or ` +
            `others read it; allowed: 0600 or 0400 (run: chmod 600 ${path})`,
        );
      }
      Deno.chmodSync(path, 0o600);
      Deno.chownSync(path, 65534, null);
      assertMatch(
        configError(load),
        new RegExp(
          `^${path}:${line}: ${
            label.replace(/[[\]]/g, "\\$&")
          } .*: owned by uid 65534, not by the user running vpn .*run: chown`,
        ),
      );
    });
  }
  // Without a key inline, a world-readable config is fine (config.toml ships 0644).
  withConfig(`[server]\nmtu = 1400\n`, (path) => {
    Deno.chmodSync(path, 0o644);
    assertEquals(loadServerOptions({ config: path }, {}).mtu, 1400);
  });
});

Deno.test("IPv6 takeover by config: overlapping address6 values and a too-long IPv6 prefix are refused", () => {
  const peer = (name: string, addr: string, a6?: string) =>
    `[[server.peers]]\nname = "${name}"\naddress = "${addr}"\n` + (a6 ? `address6 = "${a6}"\n` : "");
  const cases: [string, RegExp][] = [
    // fd00::7 is what a client at 10.0.0.7 gets: a shared-key client asking for .7 would take it.
    [
      `[server]\naddress6 = "fd00::1/64"\n` + peer("a", "10.0.0.5", "fd00::7"),
      /vpn\.toml:6: server\.peers\[0\]\.address6: got "fd00::7"; allowed: an IPv6 address no other IPv4 address maps to \(10\.0\.0\.7 in 10\.0\.0\.0\/24 gets fd00::7\)$/,
    ],
    // Another pinned peer's mirror.
    [
      `[server]\naddress6 = "fd00::1/64"\n` + peer("a", "10.0.0.5") + peer("b", "10.0.0.6", "fd00::5"),
      /vpn\.toml:9: server\.peers\[1\]\.address6: got "fd00::5"; allowed: an IPv6 address no other IPv4 address maps to \(10\.0\.0\.5/,
    ],
    // Two pinned peers with the same address6 outside the mirrored range.
    [
      `[server]\naddress6 = "fd00::1/64"\n` + peer("a", "10.0.0.5", "fd00::1:1") +
      peer("b", "10.0.0.6", "fd00::1:1"),
      /vpn\.toml:10: server\.peers\[1\]\.address6: got "fd00::1:1"; allowed: an address no other peer has \(peer "a" has it\)$/,
    ],
    // The server's own IPv6 address.
    [
      `[server]\naddress6 = "fd00::1:1/64"\n` + peer("a", "10.0.0.5", "fd00::1:1"),
      /vpn\.toml:6: server\.peers\[0\]\.address6: got "fd00::1:1"; allowed: an address other than the server's own$/,
    ],
    // The server's IPv6 address is a client's mirror.
    [
      `[server]\naddress6 = "fd00::9/64"\n`,
      /vpn\.toml:2: server\.address6: got "fd00::9"; allowed: an IPv6 address no other IPv4 address maps to \(10\.0\.0\.9 /,
    ],
    // 8 host bits in IPv6 for a /16 of IPv4: clients .0.5 and .1.5 would share fd00::5.
    [
      `[server]\naddress = "10.1.0.1/16"\naddress6 = "fd00::1/120"\n`,
      /vpn\.toml:3: server\.address6: got "fd00::1\/120"; allowed: a prefix of \/112 or shorter \(as many host bits as 10\.1\.0\.1\/16\)$/,
    ],
  ];
  for (const [text, re] of cases) {
    withConfig(text, (path) => assertMatch(configError(() => loadServerOptions({ config: path }, {})), re));
  }
  // Allowed: a peer's own mirror, a prefix exactly wide enough, an address outside the mirrored range.
  withConfig(
    `[server]\naddress = "10.1.0.1/16"\naddress6 = "fd00::1/112"\n` + peer("a", "10.1.0.5", "fd00::5") +
      peer("c", "10.1.0.7"),
    (path) => assertEquals(loadServerOptions({ config: path }, {}).peers.length, 2),
  );
  withConfig(
    `[server]\naddress = "10.1.0.1/16"\naddress6 = "fd00::1/64"\n` + peer("b", "10.1.0.6", "fd00::1:0:6"),
    (path) => assertEquals(loadServerOptions({ config: path }, {}).peers.length, 1),
  );
  // The mirrors of the IPv4 network and broadcast addresses are nobody's: no client ever gets those.
  withConfig(
    `[server]\naddress6 = "fd00::/64"\n` + peer("d", "10.0.0.8", "fd00::ff"),
    (path) => assertEquals(loadServerOptions({ config: path }, {}).peers.length, 1),
  );
});
