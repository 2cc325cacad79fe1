/**
 * Handshakes under attack (as root): `deno run -A bench/handshake_bench.ts [--tries N] [--skip-wg]`.
 *
 * 1. Handshakes per second the responder completes in one process (check, open, respond, session keys;
 *    OpenSSL data-path backend, WebCrypto handshake crypto), 64 in flight, no rate limit.
 * 2. A real `vpn client`'s connect time (its log: "client started" to "handshake complete"), median and
 *    p99 of N tries, in namespaces (`tests/netns`), with no flood, under a junk flood and under a valid-key
 *    flood (a pinned peer's key) from a third namespace (`tests/netns/flood_tool.ts`, full speed).
 * 3. wireguard-go's connect time under the same junk flood (148-byte junk with WireGuard's type): a fresh
 *    peer entry on the client, then the time until one ping through the tunnel is answered.
 * Every flood is bounded (120 s) and stopped after the tries; namespaces and processes are removed on exit.
 */
import { createNetwork, type Host } from "../tests/netns/hosts.ts";
import { newKey, VPN_PORT, VpnLab, type VpnNode } from "../tests/netns/vpn.ts";
import { connectMs, sleep, startFlood } from "../tests/netns/flood.ts";
import { createInitiation, InitiationClock, randomIndex, Responder } from "../src/protocol/handshake.ts";
import { deriveHandshakeKey } from "../src/protocol/keys.ts";
import { selectAeadBackend } from "../src/dataplane/aead_select.ts";
import { Session } from "../src/protocol/session.ts";

const args = Deno.args;
const TRIES = Number(args[args.indexOf("--tries") + 1] || 20) || 20;
const FLOOD_MAX_MS = 120_000;
const WG_PORT = 51821;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

function summary(name: string, xs: number[]): string {
  return `| ${name} | ${xs.length} | ${quantile(xs, 0.5).toFixed(0)} | ${quantile(xs, 0.99).toFixed(0)} | ${
    Math.max(...xs).toFixed(0)
  } |`;
}

async function responderRate(): Promise<string> {
  const key = await deriveHandshakeKey(crypto.getRandomValues(new Uint8Array(32)));
  const aead = (await selectAeadBackend("openssl")).backend;
  const r = new Responder({ keyRate: 1e9, keyBurst: 1e9 });
  r.setKeys([key]);
  const clock = new InitiationClock();
  const N = 3000;
  const inits: Uint8Array[] = [];
  for (let i = 0; i < N; i++) {
    inits.push(
      (await createInitiation(key, { senderIndex: i, requestedAddress: null, timestamp: clock.next() }))
        .message,
    );
  }
  let next = 0, done = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < N) {
      const d = inits[next++];
      const k = r.checkInitiation(d);
      if (typeof k === "string") throw new Error(k);
      const o = await r.openInitiation(d, Date.now(), k);
      if (!o.ok) throw new Error(o.reason);
      const a = await r.respond(o.value, {
        senderIndex: randomIndex(),
        params: { ipv4: { address: "10.0.0.2", prefix: 24 }, ipv6: null, mtu: 1420, keepaliveSeconds: 25 },
      });
      if (!a.ok) throw new Error(a.reason);
      await Session.create(aead, { ...a.value, isInitiator: false, now: performance.now() });
      done++;
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  const s = (performance.now() - t0) / 1000;
  return `${(done / s).toFixed(0)} handshakes/s (${done} in ${s.toFixed(2)} s)`;
}

async function ourConnects(lab: VpnLab, srv: VpnNode, host: string, tries: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < tries; i++) {
    const c = await lab.client(host, srv, { wait: false });
    try {
      await VpnLab.connected(c, 15_000);
      out.push(connectMs(c));
    } catch {
      out.push(15_000); // counted as a failure at the bound
    }
    await c.stop(2000);
  }
  return out;
}

async function wgConnects(hs: Host, hc: Host, tries: number): Promise<number[]> {
  const gen = async (h: Host) => {
    const priv = (await h.runOk(["wg", "genkey"])).trim();
    const pub = (await h.runOk(["sh", "-c", `echo ${priv} | wg pubkey`])).trim();
    return { priv, pub };
  };
  const [ks, kc] = [await gen(hs), await gen(hc)];
  const dir = await Deno.makeTempDir({ prefix: "hsb-wg-" });
  await Deno.writeTextFile(`${dir}/s.key`, ks.priv, { mode: 0o600 });
  await Deno.writeTextFile(`${dir}/c.key`, kc.priv, { mode: 0o600 });
  const [ifs, ifc] = [`hbws${Deno.pid % 10000}`, `hbwc${Deno.pid % 10000}`];
  const env = { WG_PROCESS_FOREGROUND: "1" };
  const ps = hs.spawn(["wireguard-go", ifs], { env }), pc = hc.spawn(["wireguard-go", ifc], { env });
  try {
    for (
      let i = 0;
      i < 50 && !(await exists(`/var/run/wireguard/${ifs}.sock`, `/var/run/wireguard/${ifc}.sock`));
      i++
    ) {
      await sleep(100);
    }
    await hs.runOk(["wg", "set", ifs, "private-key", `${dir}/s.key`, "listen-port", String(WG_PORT)]);
    await hs.runOk(["wg", "set", ifs, "peer", kc.pub, "allowed-ips", "10.77.0.2/32"]);
    await hs.runOk(["ip", "addr", "add", "10.77.0.1/24", "dev", ifs]);
    await hs.runOk(["ip", "link", "set", ifs, "up"]);
    await hc.runOk(["wg", "set", ifc, "private-key", `${dir}/c.key`]);
    await hc.runOk(["ip", "addr", "add", "10.77.0.2/24", "dev", ifc]);
    await hc.runOk(["ip", "link", "set", ifc, "up"]);
    const out: number[] = [];
    for (let i = 0; i < tries; i++) {
      // A fresh peer entry: no session, so the ping waits for a new handshake.
      await hc.run(["wg", "set", ifc, "peer", ks.pub, "remove"]);
      await hc.runOk([
        "wg",
        "set",
        ifc,
        "peer",
        ks.pub,
        "allowed-ips",
        "10.77.0.1/32",
        "endpoint",
        `${hs.address}:${WG_PORT}`,
      ]);
      const t0 = performance.now();
      const r = await hc.run(["ping", "-n", "-c", "1", "-W", "15", "10.77.0.1"], { timeoutMs: 20_000 });
      out.push(r.code === 0 ? performance.now() - t0 : 15_000);
    }
    return out;
  } finally {
    await Promise.all([ps.stop("SIGTERM", 2000), pc.stop("SIGTERM", 2000)]);
    await Deno.remove(`/var/run/wireguard/${ifs}.sock`).catch(() => {});
    await Deno.remove(`/var/run/wireguard/${ifc}.sock`).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(...paths: string[]): Promise<boolean> {
  for (const p of paths) if (!(await Deno.stat(p).then(() => true, () => false))) return false;
  return true;
}

async function main(): Promise<void> {
  console.log(`responder: ${await responderRate()}`);
  await using net = await createNetwork({ hosts: ["srv", "cli", "atk"], prefix: "hb" });
  await using lab = await VpnLab.create(net);
  const [hs, hc, ha] = ["srv", "cli", "atk"].map((n) => net.host(n));
  const keyA = newKey();
  const fileA = await lab.writeKeyFile("alice", keyA);
  const srv = await lab.server("srv", {
    config: `[server]\naddress = "10.0.0.1/24"\n\n[[server.peers]]\nname = "alice"\naddress = "10.0.0.10"\n` +
      `key_file = "${fileA}"\n`,
  });
  const rows: string[] = [];
  const floodSent: string[] = [];
  rows.push(summary("vpn, no flood", await ourConnects(lab, srv, "cli", TRIES)));
  for (const [name, mode, arg] of [["junk", "junk", ""], ["valid-key", "valid", keyA]] as const) {
    const before = await srv.status();
    const f = startFlood(ha, mode, hs.address, VPN_PORT, FLOOD_MAX_MS, arg);
    await sleep(1000);
    const t0 = performance.now();
    const xs = await ourConnects(lab, srv, "cli", TRIES);
    const r = await f.stop();
    const s = (performance.now() - t0 + 1000) / 1000;
    const after = await srv.status();
    const counted = (["auth", "busy", "replay", "malformed"] as const)
      .reduce((n, k) => n + after.drops[k] - before.drops[k], 0);
    rows.push(summary(`vpn, ${name} flood`, xs));
    floodSent.push(
      `${name}: ${(r.sent / s / 1000).toFixed(0)}k datagrams/s sent, ${
        (counted / s / 1000).toFixed(0)
      }k/s counted by the server, ${r.responses} responses, ${r.cookies} cookie replies`,
    );
  }
  if (!args.includes("--skip-wg")) {
    rows.push(summary("wireguard-go, no flood", await wgConnects(hs, hc, TRIES)));
    const f = startFlood(ha, "wg-junk", hs.address, WG_PORT, FLOOD_MAX_MS);
    await sleep(1000);
    const t0 = performance.now();
    const xs = await wgConnects(hs, hc, TRIES);
    const r = await f.stop();
    rows.push(summary("wireguard-go, junk flood", xs));
    floodSent.push(
      `wg-junk: ${(r.sent / ((performance.now() - t0 + 1000) / 1000) / 1000).toFixed(0)}k datagrams/s`,
    );
  }
  console.log("| connect time | tries | median ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(r);
  console.log(`floods: ${floodSent.join("; ")}`);
  const st = await srv.status();
  console.log(`server drops at the end: ${JSON.stringify(st.drops)}`);
}

if (import.meta.main) await main();
