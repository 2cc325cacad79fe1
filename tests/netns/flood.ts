/**
 * Helpers of the handshake flood tests and bench: run `flood_tool.ts` in a host, read a client's connect
 * time from its own log, a process's resident memory, and ping loss.
 */
import type { Host } from "./hosts.ts";
import type { VpnNode } from "./vpn.ts";

const TOOL = new URL("./flood_tool.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** What a flood sent and got back. */
export interface FloodResult {
  sent: number;
  received: number;
  responses: number;
  cookies: number;
}

type FloodMode = "junk" | "keyid" | "replay" | "valid" | "future" | "wg-junk";

function floodCmd(mode: FloodMode, address: string, port: number, ms: number, arg: string, max: number) {
  return [
    Deno.execPath(),
    "run",
    "-A",
    "--config",
    CONFIG,
    TOOL,
    mode,
    address,
    String(port),
    String(ms),
    String(max),
    arg,
  ];
}

function parseResult(text: string): FloodResult | null {
  const m = text.match(/sent (\d+) received (\d+) responses (\d+) cookies (\d+)/);
  return m && { sent: Number(m[1]), received: Number(m[2]), responses: Number(m[3]), cookies: Number(m[4]) };
}

/** Floods `address`:`port` from `host` for `ms` (at most `max` datagrams); see flood_tool.ts for modes. */
export async function flood(
  host: Host,
  mode: FloodMode,
  address: string,
  port: number,
  ms: number,
  arg = "",
  max = 50_000_000,
): Promise<FloodResult> {
  const r = await host.run(floodCmd(mode, address, port, ms, arg, max), { timeoutMs: ms + 30_000 });
  const res = parseResult(r.stdout);
  if (r.code !== 0 || !res) throw new Error(`flood ${mode} failed (code ${r.code}): ${r.stdout}${r.stderr}`);
  return res;
}

/** A flood of at most `ms` that `stop()` ends early (SIGTERM; the tool then prints its counts). */
export function startFlood(host: Host, mode: FloodMode, address: string, port: number, ms: number, arg = "") {
  const p = host.spawn(floodCmd(mode, address, port, ms, arg, 100_000_000));
  return {
    async stop(): Promise<FloodResult> {
      p.kill("SIGTERM");
      await Promise.race([p.exited, sleep(10_000)]);
      const res = parseResult(p.stdout());
      await p.stop("SIGKILL", 0);
      if (!res) throw new Error(`flood ${mode} printed no result: ${p.output()}`);
      return res;
    },
  };
}

/** Milliseconds from a client's "client started" log line to its "handshake complete" (its own clock). */
export function connectMs(client: VpnNode): number {
  const at = (re: RegExp) => {
    const line = client.output().split("\n").find((l) => re.test(l));
    if (!line) throw new Error(`no ${re} in the client's log:\n${client.output()}`);
    return Date.parse(line.slice(0, 24));
  };
  return at(/ handshake complete/) - at(/ client started/);
}

/** Resident set size of process `pid` in KiB. */
export function rssKiB(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Sends `count` pings every `intervalS` from `host` to `address`; gives the loss in percent. */
export async function pingLoss(
  host: Host,
  address: string,
  count: number,
  intervalS: number,
): Promise<number> {
  const r = await host.run([
    "ping",
    "-n",
    "-q",
    "-c",
    String(count),
    "-i",
    String(intervalS),
    "-W",
    "1",
    address,
  ], {
    timeoutMs: count * intervalS * 1000 + 10_000,
  });
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) received/);
  if (!m) throw new Error(`ping output not understood: ${r.stdout}${r.stderr}`);
  return (100 * (Number(m[1]) - Number(m[2]))) / Number(m[1]);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
