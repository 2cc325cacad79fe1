/**
 * `deno task bench` (as root): our tunnel against the bare veth, wireguard-go and OpenVPN (AES-256-GCM),
 * measured by the shared `tunnel-bench` harness in one invocation per run, N runs, medians per mode,
 * our figures as ratios to today's wireguard-go (the headline) and to Debian's old one; with `--offload-ab`
 * each run also measures our tunnel with `--offload off` (alternating which goes first); then one run of the reference data path (WebCrypto + Deno UDP)
 * and a fixed-rate UDP loss test at 80 % of our own TCP rate. Writes `bench/RESULTS.md`.
 *
 *   deno run -A bench/run.ts [--runs N] [--seconds N] [--quick] [--modes a,b] [--no-reference]
 *                            [--offload-ab] [--no-loss] [--loss-seconds N] [--deno-flags "..."] [--out FILE | --no-write]
 *
 * The loss test does not go through tunnel-bench (it would repeat every measurement at 60 s): it builds its
 * own two namespaces with the test harness (`tests/netns/hosts.ts`, prefix "vb"), runs our server and client
 * there and one `iperf3 -u -l 1300 -b RATE -t 60` through the tunnel, and reports the receiver's loss.
 */
import { createNetwork } from "../tests/netns/hosts.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const TUNNEL_BENCH = new URL("../../shared/bench/tunnel-bench", import.meta.url).pathname;
const REFERENCE_MODES = ["direct", "wireguard-go", "wireguard-go-current", "openvpn-gcm"];
const ALL_MODES = [...REFERENCE_MODES, "custom"];
/** Tools each mode needs besides what tunnel-bench checks itself. */
const TOOLS: Record<string, string[]> = {
  common: ["ip", "iperf3", "ping", "jq", "awk", "column", "timeout"],
  "wireguard-go": ["wireguard-go", "wg"],
  "wireguard-go-current": ["wg"],
  "openvpn-gcm": ["openvpn", "openssl"],
};

/** Bad command line; printed with the usage. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed command line. */
interface Options {
  runs: number;
  seconds: number;
  quick: boolean;
  modes: string[];
  reference: boolean;
  offloadAb: boolean;
  loss: boolean;
  lossSeconds: number;
  denoFlags: string[];
  out: string | null;
}

const USAGE = `usage: deno run -A bench/run.ts [options]   (as root)
  --runs N            tunnel-bench invocations (default 3)
  --seconds N         length of each iperf3 run (default 10)
  --quick             1 run of 3 s, loss test 10 s, RESULTS.md not written unless --out
  --modes a,b         modes to run (default ${ALL_MODES.join(",")})
  --no-reference      skip the WebCrypto + Deno UDP run
  --offload-ab        also run our tunnel with --offload off in each run (alternating order)
  --no-loss           skip the fixed-rate UDP loss test
  --loss-seconds N    length of the loss test (default 60)
  --deno-flags "..."  extra flags for 'deno run' of server and client (e.g. --cpu-prof)
  --out FILE          where to write the report (default bench/RESULTS.md)
  --no-write          print only`;

function parseOptions(args: string[]): Options {
  const o: Options = {
    runs: 3,
    seconds: 10,
    quick: false,
    modes: ALL_MODES,
    reference: true,
    offloadAb: false,
    loss: true,
    lossSeconds: 60,
    denoFlags: [],
    out: `${REPO}/bench/RESULTS.md`,
  };
  let runsSet = false, secondsSet = false, lossSet = false, outSet = false, noWrite = false;
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case "--runs":
        o.runs = int(a, args[++i], 1);
        runsSet = true;
        break;
      case "--seconds":
        o.seconds = int(a, args[++i], 2);
        secondsSet = true;
        break;
      case "--quick":
        o.quick = true;
        break;
      case "--modes": {
        const list = (args[++i] ?? "").split(",").filter((m) => m !== "");
        const bad = list.filter((m) => !ALL_MODES.includes(m));
        if (list.length === 0 || bad.length > 0) {
          throw new UsageError(`--modes takes a comma list of ${ALL_MODES.join(", ")}`);
        }
        o.modes = list;
        break;
      }
      case "--no-reference":
        o.reference = false;
        break;
      case "--offload-ab":
        o.offloadAb = true;
        break;
      case "--no-loss":
        o.loss = false;
        break;
      case "--loss-seconds":
        o.lossSeconds = int(a, args[++i], 2);
        lossSet = true;
        break;
      case "--deno-flags":
        o.denoFlags = (args[++i] ?? "").split(/\s+/).filter((f) => f !== "");
        break;
      case "--out":
        if (!args[i + 1]) throw new UsageError("--out needs a file");
        o.out = args[++i];
        outSet = true;
        break;
      case "--no-write":
        noWrite = true;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument ${a}`);
    }
  }
  if (o.quick) {
    if (!runsSet) o.runs = 1;
    if (!secondsSet) o.seconds = 3;
    if (!lossSet) o.lossSeconds = 10;
    if (!outSet) o.out = null;
  }
  if (noWrite) o.out = null;
  return o;
}

// ---------------------------------------------------------------- small helpers

async function have(tool: string): Promise<boolean> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `command -v ${tool}`],
    stdout: "null",
    stderr: "null",
  })
    .output();
  return r.success;
}

async function capture(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(r.stdout).trim();
  } catch {
    return "?";
  }
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------- tunnel-bench runs

/** One mode's result from tunnel-bench's JSON (only the fields we report). */
interface ModeResult {
  mode: string;
  status: string;
  reason?: string;
  tcp1?: { rx_mbps?: number; cpu_s_per_gb?: number | null };
  tcp4?: { rx_mbps?: number; cpu_s_per_gb?: number | null };
  udp1300?: { rx_mbps?: number; loss_pct?: number };
  udp64?: { rx_pps?: number; loss_pct?: number };
  ping_idle?: { median_ms?: number };
  ping_load?: { median_ms?: number };
}

/** The figures we tabulate, in order: [label, how to read it from a result, higher is better]. */
const METRICS: [string, (r: ModeResult) => number | null | undefined, boolean][] = [
  ["tcp1 Mbit/s", (r) => r.tcp1?.rx_mbps, true],
  ["tcp4 Mbit/s", (r) => r.tcp4?.rx_mbps, true],
  ["udp1300 Mbit/s", (r) => r.udp1300?.rx_mbps, true],
  ["udp64 kpps", (r) => r.udp64?.rx_pps === undefined ? undefined : r.udp64.rx_pps / 1000, true],
  ["rtt idle ms", (r) => r.ping_idle?.median_ms, false],
  ["rtt load ms", (r) => r.ping_load?.median_ms, false],
  ["cpu s/GB tcp1", (r) => r.tcp1?.cpu_s_per_gb, false],
  ["cpu s/GB tcp4", (r) => r.tcp4?.cpu_s_per_gb, false],
];

/** The `deno run ... mod.ts server|client ...` command lines for tunnel-bench's custom mode. */
function vpnCommands(
  o: Options,
  keyFile: string,
  runDir: string,
  extra: string[],
  underlay = "{SERVER_UNDERLAY}",
): { server: string; client: string } {
  const deno = [Deno.execPath(), "run", "-A", ...o.denoFlags, `${REPO}/mod.ts`].map(shellQuote).join(" ");
  const env = `VPN_RUN_DIR=${shellQuote(runDir)}`;
  const tail = ["--key-file", keyFile, ...extra].map(shellQuote).join(" ");
  return {
    server:
      `exec env ${env} ${deno} server --listen ${underlay}:{PORT} --address 10.8.0.1/24 --tun vpnb-s ${tail}`,
    client:
      `exec env ${env} ${deno} client --peer ${underlay}:{PORT} --address 10.8.0.2 --tun vpnb-c ${tail}`,
  };
}

/** Runs tunnel-bench once (output shown live) and returns its per-mode results. */
async function tunnelBench(
  o: Options,
  modes: string[],
  cmds: { server: string; client: string },
  jsonFile: string,
): Promise<ModeResult[]> {
  const child = new Deno.Command(TUNNEL_BENCH, {
    args: ["--seconds", String(o.seconds), "--json", jsonFile, ...modes],
    env: { SERVER_CMD: cmds.server, CLIENT_CMD: cmds.client },
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const status = await child.status;
  let parsed: { results?: ModeResult[] };
  try {
    parsed = JSON.parse(await Deno.readTextFile(jsonFile));
  } catch (e) {
    throw new Error(`tunnel-bench (exit ${status.code}) wrote no readable JSON: ${(e as Error).message}`);
  }
  return parsed.results ?? [];
}

// ---------------------------------------------------------------- loss test

interface LossResult {
  rateMbps: number;
  seconds: number;
  rxMbps: number;
  lossPct: number;
  lostPackets: number;
  packets: number;
}

/** 1300-byte iperf3 UDP at a fixed rate through our tunnel, in namespaces made here. */
async function lossTest(o: Options, keyFile: string, runDir: string, rateMbps: number): Promise<LossResult> {
  await using net = await createNetwork({ hosts: ["srv", "cli"], prefix: "vb" });
  const srv = net.host("srv"), cli = net.host("cli");
  const cmds = vpnCommands(o, keyFile, runDir, [], srv.address);
  srv.spawn(["bash", "-c", cmds.server.replaceAll("{PORT}", "51820")]);
  await new Promise((r) => setTimeout(r, 500));
  cli.spawn(["bash", "-c", cmds.client.replaceAll("{PORT}", "51820")]);
  await cli.waitForPing("10.8.0.1", 20_000);
  srv.spawn(["iperf3", "-s", "-p", "5201"]);
  await new Promise((r) => setTimeout(r, 500));
  const rate = `${Math.max(1, Math.round(rateMbps))}M`;
  const r = await cli.runOk(
    [
      "iperf3",
      "-c",
      "10.8.0.1",
      "-p",
      "5201",
      "-u",
      "-l",
      "1300",
      "-b",
      rate,
      "-t",
      String(o.lossSeconds),
      "-J",
    ],
    { timeoutMs: (o.lossSeconds + 20) * 1000 },
  );
  const end = JSON.parse(r).end;
  const rx = end.sum_received ?? end.sum;
  return {
    rateMbps: Math.round(rateMbps),
    seconds: o.lossSeconds,
    rxMbps: Math.round(rx.bits_per_second / 1e4) / 100,
    lossPct: Math.round((rx.lost_percent ?? end.sum.lost_percent) * 1000) / 1000,
    lostPackets: rx.lost_packets ?? end.sum.lost_packets,
    packets: rx.packets ?? end.sum.packets,
  };
}

// ---------------------------------------------------------------- report

const fmt = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined ? "-" : v >= 100 ? String(Math.round(v)) : v.toFixed(digits);

interface Row {
  label: string;
  ok: number;
  of: number;
  values: (number | null)[];
}

function summarise(label: string, results: ModeResult[]): Row {
  const ok = results.filter((r) => r.status === "ok");
  return {
    label,
    ok: ok.length,
    of: results.length,
    values: METRICS.map(([, get]) =>
      median(ok.map(get).filter((v): v is number => typeof v === "number" && Number.isFinite(v)))
    ),
  };
}

function markdownTable(rows: Row[], ratios: Row[]): string {
  const head = ["mode", "runs ok", ...METRICS.map(([l]) => l)];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    lines.push(`| ${r.label} | ${r.ok}/${r.of} | ${r.values.map((v) => fmt(v, 2)).join(" | ")} |`);
  }
  for (const r of ratios) {
    lines.push(
      `| ${r.label} | | ${r.values.map((v) => v === null ? "-" : `${v.toFixed(2)}x`).join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

function ratioRow(label: string, ours: Row, ref: Row | undefined): Row {
  return {
    label,
    ok: 0,
    of: 0,
    values: ours.values.map((v, i) => {
      const b = ref?.values[i];
      return v === null || b === null || b === undefined || b === 0 ? null : v / b;
    }),
  };
}

async function machine(): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  return `${navigator.hardwareConcurrency} CPUs (${await capture("nproc", [])} online), ${cpu}; ` +
    `kernel ${await capture("uname", ["-r"])}; deno ${Deno.version.deno}; ` +
    `${await capture("openssl", ["version"])}`;
}

// ---------------------------------------------------------------- main

async function main(args: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`bench: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (Deno.uid() !== 0) {
    console.error("bench: needs root (network namespaces, TUN devices)");
    return 1;
  }
  try {
    await Deno.stat(TUNNEL_BENCH);
  } catch {
    console.error(
      `bench: the harness is missing: ${TUNNEL_BENCH} (expected in shared/bench next to the repo)`,
    );
    return 1;
  }
  const missing: string[] = [];
  for (const t of TOOLS.common) if (!(await have(t))) missing.push(t);
  if (missing.length > 0) {
    console.error(
      `bench: missing tools: ${missing.join(", ")} (Debian: apt-get install -y iperf3 jq iproute2 ` +
        `iputils-ping util-linux coreutils)`,
    );
    return 1;
  }
  const modes: string[] = [];
  for (const m of o.modes) {
    const lack: string[] = [];
    for (const t of TOOLS[m] ?? []) if (!(await have(t))) lack.push(t);
    if (lack.length > 0) {
      console.error(
        `bench: skipping ${m}: missing ${lack.join(", ")} (Debian: apt-get install -y ` +
          `${m === "wireguard-go" ? "wireguard-go wireguard-tools" : "openvpn openssl"})`,
      );
    } else modes.push(m);
  }

  const tmp = await Deno.makeTempDir({ prefix: "vpn-bench-" });
  try {
    const keyFile = `${tmp}/vpn.key`;
    const key = await capture(Deno.execPath(), ["run", "-A", `${REPO}/mod.ts`, "genkey"]);
    if (!/^[A-Za-z0-9+/]{43}=$/.test(key)) throw new Error(`vpn genkey printed no key: ${key}`);
    await Deno.writeTextFile(keyFile, key + "\n", { mode: 0o600 });
    await Deno.chmod(keyFile, 0o600);
    const runDir = `${tmp}/run`;
    await Deno.mkdir(runDir);
    await Deno.chmod(runDir, 0o700); // the roles refuse a run folder others can enter
    const vpnCmds = vpnCommands(o, keyFile, runDir, []);
    const offCmds = vpnCommands(o, keyFile, runDir, ["--offload", "off"]);
    const started = new Date();

    const byMode = new Map<string, ModeResult[]>();
    const offload: ModeResult[] = [];
    const abOff = o.offloadAb && modes.includes("custom");
    for (let i = 1; i <= o.runs; i++) {
      console.error(`\nbench: run ${i}/${o.runs}: ${modes.join(" ")} (${o.seconds} s per iperf3 run)`);
      // A/B of the offloads: the extra run goes before the main one in even runs, after it in odd ones.
      const offRun = async () => {
        console.error(`bench: run ${i}/${o.runs}: custom with --offload off`);
        offload.push(...await tunnelBench(o, ["custom"], offCmds, `${tmp}/off${i}.json`));
      };
      if (abOff && i % 2 === 0) await offRun();
      for (const r of await tunnelBench(o, modes, vpnCmds, `${tmp}/run${i}.json`)) {
        if (!byMode.has(r.mode)) byMode.set(r.mode, []);
        byMode.get(r.mode)!.push(r);
        if (r.status !== "ok") console.error(`bench: ${r.mode} run ${i}: ${r.status} ${r.reason ?? ""}`);
      }
      if (abOff && i % 2 === 1) await offRun();
    }
    let reference: ModeResult[] = [];
    const refCmds = vpnCommands(o, keyFile, runDir, ["--crypto", "webcrypto", "--udp", "deno"]);
    if (o.reference) {
      console.error(`\nbench: reference path (webcrypto + deno UDP), 1 run`);
      reference = await tunnelBench(o, ["custom"], refCmds, `${tmp}/reference.json`);
    }

    const rows: Row[] = [];
    for (const m of modes) {
      rows.push(summarise(m === "custom" ? "vpn (openssl, batched)" : m, byMode.get(m) ?? []));
    }
    if (offload.length > 0) rows.push(summarise("vpn (openssl, batched, offload off)", offload));
    if (reference.length > 0) rows.push(summarise("vpn (webcrypto, deno)", reference));
    // Headline: today's wireguard-go (all its offloads on); then Debian's old one.
    const ratios: Row[] = [];
    for (const ref of ["wireguard-go-current", "wireguard-go"]) {
      const base = rows.find((r) => r.label === ref);
      if (base === undefined) continue;
      for (const r of rows) {
        if (r.label.startsWith("vpn")) ratios.push(ratioRow(`${r.label} / ${ref}`, r, base));
      }
    }

    let loss: LossResult | null = null;
    let lossError = "";
    const ours = rows.find((r) => r.label === "vpn (openssl, batched)");
    const tcp = ours?.values[0] ?? null;
    if (o.loss && tcp !== null) {
      console.error(
        `\nbench: loss test: iperf3 -u -l 1300 at 80 % of ${fmt(tcp)} Mbit/s for ${o.lossSeconds} s`,
      );
      try {
        loss = await lossTest(o, keyFile, runDir, tcp * 0.8);
      } catch (e) {
        lossError = (e as Error).message.split("\n")[0];
        console.error(`bench: loss test failed: ${lossError}`);
      }
    } else if (o.loss) lossError = "no TCP rate of our tunnel to base it on";

    const table = markdownTable(rows, ratios);
    const lossText = loss
      ? `UDP 1300-byte payloads at ${loss.rateMbps} Mbit/s (80 % of our median single-stream TCP rate) for ` +
        `${loss.seconds} s: received ${loss.rxMbps} Mbit/s, loss ${loss.lossPct} % ` +
        `(${loss.lostPackets} of ${loss.packets} datagrams).`
      : o.loss
      ? `not measured: ${lossError}`
      : "not run (--no-loss)";
    const command = `deno task bench ${args.map(shellQuote).join(" ")}`.trim();
    console.log(`\n${table}\n\nloss test: ${lossText}`);
    if (o.out !== null) {
      const md = `# Benchmark results

Written by \`bench/run.ts\`; medians over the runs whose status was "ok". Each run is one
\`tunnel-bench\` invocation with all modes (so the reference tunnels and ours share the same conditions).
Higher is better for Mbit/s and kpps, lower for RTT and CPU s/GB. The ratio rows divide our medians by
today's wireguard-go's (\`wireguard-go-current\`, the headline), then by Debian's old wireguard-go's.
See \`../../shared/bench/README.md\` for what each column measures.

- command: \`${command}\` (${o.runs} run(s) x ${o.seconds} s per iperf3 measurement${
        o.reference ? ", plus 1 run of the reference path" : ""
      })
- date: ${started.toISOString()}
- machine: ${await machine()}
- our tunnel: \`${vpnCmds.server.replace(Deno.execPath(), "deno")}\` and the matching client

${table}

## Fixed-rate UDP loss test

${lossText}
It runs outside tunnel-bench, in two namespaces joined by a bridge (\`tests/netns/hosts.ts\`), our server and
client, \`iperf3 -u -l 1300 -b RATE\`; loss is what the iperf3 receiver reports.
`;
      // Keep the memory section (written by hand from bench/memory_bench.ts) of a previous report.
      const previous = await Deno.readTextFile(o.out).catch(() => "");
      const memory = previous.indexOf("\n## Server memory");
      const kept = memory >= 0 ? previous.slice(memory) : "";
      await Deno.writeTextFile(o.out, md.replaceAll(tmp, "$TMP") + kept);
      // The project's `deno fmt --check` covers Markdown too.
      await new Deno.Command(Deno.execPath(), {
        args: ["fmt", "--quiet", o.out],
        stdout: "null",
        stderr: "null",
      })
        .output();
      console.error(`bench: wrote ${o.out}`);
    } else {
      console.error("bench: report not written (quick run or --no-write; --out FILE to write one)");
    }
    return 0;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
