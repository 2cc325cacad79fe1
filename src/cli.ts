/**
 * The `vpn` command line: `vpn <command> [flags]`. The roles and the status client are imported when
 * their command runs, so `genkey`, `help` and `version` load no FFI binding and read no environment.
 */
import { parseArgs } from "node:util";
import { type Flags, loadClientOptions, loadServerOptions } from "./config/config.ts";
import { ConfigError } from "./config/config_error.ts";
import { generateKey, KeyError, keyToBase64 } from "./config/key_file.ts";
import { VERSION } from "./version.ts";
import { INTERFACE_NAME_RULE, invalidInterfaceName } from "./net/interface_name.ts";
import { DEFAULT_MTU, MAX_MTU, MIN_MTU } from "./protocol/constants.ts";

type OptionSpec = { type: "string" | "boolean"; multiple?: boolean; short?: string };

interface Command {
  readonly usage: string;
  readonly options: Record<string, OptionSpec>;
  readonly help: string;
}

const COMMON: Record<string, OptionSpec> = { help: { type: "boolean", short: "h" } };
const KEY_OPTS: Record<string, OptionSpec> = { key: { type: "string" }, "key-file": { type: "string" } };
const PATH_OPTS: Record<string, OptionSpec> = {
  crypto: { type: "string" },
  udp: { type: "string" },
  offload: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  metrics: { type: "string" },
};

const COMMANDS: Record<string, Command> = {
  server: {
    usage: "vpn server [--config FILE] [--listen HOST:PORT] [--port N] [--tun NAME] [--address CIDR]\n" +
      "                  [--key-file FILE | --key BASE64] [--mtu N] [--nat IFACE] [--log-level LEVEL]\n" +
      "                  [--log-format text|json] [--metrics HOST:PORT]\n" +
      "                  [--crypto auto|openssl|webcrypto] [--udp auto|batched|deno] [--offload auto|off]",
    options: {
      ...COMMON,
      ...KEY_OPTS,
      ...PATH_OPTS,
      config: { type: "string" },
      listen: { type: "string" },
      port: { type: "string" },
      tun: { type: "string" },
      address: { type: "string" },
      mtu: { type: "string" },
      nat: { type: "string" },
    },
    help: `Run the VPN server: create the TUN device, listen on UDP and serve clients.

  --config FILE      settings from the [server] section of a TOML file (see config.toml)
  --listen HOST:PORT UDP address to listen on (default [::]:51820, IPv4 and IPv6)
  --port N           UDP port (overrides the port of the config's listen address)
  --tun NAME         TUN device name (default vpn0; "" lets the kernel choose)
  --address CIDR     the server's overlay address and subnet (default 10.0.0.1/24)
  --key-file FILE    key file (created 0600 if missing; default /etc/vpn/vpn.key)
  --key BASE64       the key itself (also VPN_KEY in the environment)
  --mtu N            tunnel MTU, ${MIN_MTU}..${MAX_MTU} (default ${DEFAULT_MTU})
  --nat IFACE        masquerade client traffic out of IFACE (nft or iptables) and forward
  --log-level LEVEL  trace, debug, info, warn or error (default info); trace logs every packet
  --log-format FMT   text (default) or json (one object per line)
  --metrics HOST:PORT serve Prometheus metrics on http://HOST:PORT/metrics (PORT alone: 127.0.0.1)
  --crypto KIND      AES-256-GCM implementation: auto (default), openssl, webcrypto
  --udp KIND         UDP implementation: auto (default), batched, deno
  --offload MODE     TUN offloads (TSO/USO, GRO in user space): auto (default), off`,
  },
  client: {
    usage:
      "vpn client --peer HOST:PORT [--peer HOST:PORT]... [--config FILE] [--tun NAME] [--address CIDR]\n" +
      "                  [--key-file FILE | --key BASE64] [--route CIDR]... [--default-route]\n" +
      "                  [--kill-switch] [--no-dns] [--accept-prefix4 MIN-MAX] [--accept-prefix6 MIN-MAX]\n" +
      "                  [--accept-network CIDR]...\n" +
      "                  [--keepalive SECONDS] [--log-level LEVEL] [--log-format text|json]\n" +
      "                  [--metrics HOST:PORT] [--crypto KIND] [--udp KIND] [--offload MODE]\n" +
      "       vpn client --unblock [--tun NAME]",
    options: {
      ...COMMON,
      ...KEY_OPTS,
      ...PATH_OPTS,
      config: { type: "string" },
      peer: { type: "string", multiple: true },
      tun: { type: "string" },
      address: { type: "string" },
      route: { type: "string", multiple: true },
      "default-route": { type: "boolean" },
      "kill-switch": { type: "boolean" },
      "no-dns": { type: "boolean" },
      unblock: { type: "boolean" },
      keepalive: { type: "string" },
      "accept-prefix4": { type: "string" },
      "accept-prefix6": { type: "string" },
      "accept-network": { type: "string", multiple: true },
    },
    help: `Connect to a VPN server and bring up the tunnel.

  --peer HOST:PORT   the server (name, IPv4, or [IPv6] with port); repeat it to name fallback
                     servers, tried in order when the current one stops answering (15 s)
  --config FILE      settings from the [client] section of a TOML file (see config.toml)
  --tun NAME         TUN device name (default vpn0)
  --address CIDR     overlay address to ask for (default: the server assigns one)
  --key-file FILE    key file (default /etc/vpn/vpn.key)
  --key BASE64       the key itself (also VPN_KEY in the environment)
  --route CIDR       send this network through the tunnel (repeatable)
  --default-route    send all traffic through the tunnel, IPv4 and IPv6 (the server stays reachable
                     directly); without IPv6 in the tunnel, IPv6 is blocked while it runs
  --kill-switch      drop everything that does not go through the tunnel or to a server, from start
                     to clean stop (an nft table; it stays after a crash until the next start)
  --unblock          remove what a killed client left (kill switch, blocked IPv6, resolv.conf) and exit
  --no-dns           ignore the resolvers the server pushes (default: apply them while running)
  --keepalive SECS   keepalive interval when idle, 0 to disable
                     (default: the interval the server announces, 25 s by default)
  --accept-prefix4 MIN-MAX  IPv4 prefix lengths accepted from the server (default 8-30);
                     a response outside them is refused and the handshake retried
  --accept-prefix6 MIN-MAX  the same for IPv6 (default 64-126)
  --accept-network CIDR  accept an assigned network inside CIDR even when it is public or overlaps a
                     local address or route (repeatable; default: only private, non-overlapping ones)
  --log-level LEVEL  trace, debug, info, warn or error (default info); trace logs every packet
  --log-format FMT   text (default) or json (one object per line)
  --metrics HOST:PORT serve Prometheus metrics on http://HOST:PORT/metrics (PORT alone: 127.0.0.1)
  --crypto KIND      AES-256-GCM implementation: auto (default), openssl, webcrypto
  --udp KIND         UDP implementation: auto (default), batched, deno
  --offload MODE     TUN offloads (TSO/USO, GRO in user space): auto (default), off`,
  },
  status: {
    usage: "vpn status [--tun NAME] [--json]",
    options: { ...COMMON, tun: { type: "string" }, json: { type: "boolean" } },
    help: `Show the running server's or client's interface, peers and counters.

  --tun NAME         which instance to ask; it listens on /run/vpn/NAME.sock
                     (default: every instance with a socket in /run/vpn)
  --json             machine-readable output (stable fields, see README)`,
  },
  peer: {
    usage:
      "vpn peer add NAME [--config FILE] [--endpoint HOST:PORT] [--address ADDRESS] [--route CIDR]...\n" +
      "                  [--out FILE]\n" +
      "       vpn peer list [--config FILE] [--json]\n" +
      "       vpn peer remove NAME [--config FILE]",
    options: {
      ...COMMON,
      config: { type: "string" },
      endpoint: { type: "string" },
      address: { type: "string" },
      route: { type: "string", multiple: true },
      out: { type: "string" },
      json: { type: "boolean" },
    },
    help: `Manage the [[server.peers]] of a server's config file (a key per client).

  add NAME           make a new key for peer NAME, add its entry (the old file kept byte for byte),
                     tell a running server to load it, and write the client's complete config
  list               the peers: name, address, routes; handshake and traffic when the server runs
  remove NAME        remove the entry; a running server disconnects the peer at once

  --config FILE      the server's config (default /etc/vpn/vpn.toml; add creates it when missing)
  --endpoint H:P     where clients reach the server (default: public_endpoint in [server])
  --address ADDRESS  the peer's overlay address (default: the lowest free one)
  --route CIDR       a network behind this client (site-to-site); repeatable
  --out FILE         where the client's config goes, mode 0600 (default NAME.toml)
  --json             list: machine-readable output`,
  },
  genkey: {
    usage: "vpn genkey",
    options: { ...COMMON },
    help: "Print a new random key (32 bytes, base64) on stdout.",
  },
  version: { usage: "vpn version", options: { ...COMMON }, help: "Print the version." },
  help: { usage: "vpn help [COMMAND]", options: { ...COMMON }, help: "Show help for vpn or a command." },
};

const OVERVIEW = `vpn ${VERSION}: a small VPN server and client (AES-256-GCM over UDP, X25519 handshakes)

Usage:
  vpn server [flags]               run the server
  vpn client --peer HOST:PORT      connect to a server
  vpn status [--json]              show the running instance
  vpn peer add|list|remove         manage the server's peers (a key per client)
  vpn genkey                       print a new key
  vpn version | vpn help [COMMAND]

Run 'vpn COMMAND --help' for the flags of a command.`;

function print(text: string): void {
  console.log(text);
}

function parseFlags(name: string, cmd: Command, args: string[]): Flags {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: cmd.options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 0 && name !== "help" && name !== "peer") {
      throw new ConfigError(`vpn ${name}: unexpected argument "${positionals[0]}"; see 'vpn ${name} --help'`);
    }
    return { ...values, _: positionals.join(" ") || undefined, _words: positionals } as Flags;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as { code?: string }).code;
    const msg = (e as Error).message.split("\n")[0].replace(/\. To specify a positional.*$/, "");
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const opt = /'([^']+)'/.exec(msg)?.[1] ?? msg;
      throw new ConfigError(`${opt}: unknown flag for 'vpn ${name}'; see 'vpn ${name} --help'`);
    }
    throw new ConfigError(`vpn ${name}: ${msg}`);
  }
}

/**
 * The environment variables `vpn` reads. Each is read one by one, only by the command that needs it, so a
 * scoped `--allow-env=VPN_KEY,...` suffices (VPN_RUN_DIR is read by `src/ops/control_path.ts`, VPN_STATE_DIR
 * by `src/host/dns.ts`, PATH by the NAT setup in `src/host/routing.ts`).
 */
export interface Env {
  /** The key itself, base64 (server, client). */
  VPN_KEY?: string;
  /** Non-empty: print the stack of an unexpected error. */
  VPN_DEBUG_STACK?: string;
}

/** `name` from the process environment; undefined when unset, or when not permitted and `optional`. */
function envVar(name: keyof Env, optional: boolean): string | undefined {
  if (optional && Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}

/**
 * Run `vpn` with `args`; resolves to the process exit code (0 ok, 1 runtime failure, 2 usage/config).
 * `env` replaces the process environment (tests, embedding); without it each variable is read when used.
 */
export async function main(args: string[], env?: Env): Promise<number> {
  const getEnv = (name: keyof Env, optional = false) => env ? env[name] : envVar(name, optional);
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h") {
    print(OVERVIEW);
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") {
    print(VERSION);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`vpn: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(", ")}`);
    return 2;
  }
  try {
    const flags = parseFlags(name, cmd, rest);
    if (flags.help) {
      print(`Usage: ${cmd.usage}\n\n${cmd.help}`);
      return 0;
    }
    switch (name) {
      case "genkey":
        print(keyToBase64(generateKey()));
        return 0;
      case "version":
        print(VERSION);
        return 0;
      case "help": {
        const topic = flags._ as string | undefined;
        if (topic && COMMANDS[topic]) print(`Usage: ${COMMANDS[topic].usage}\n\n${COMMANDS[topic].help}`);
        else if (topic) throw new ConfigError(`vpn help: unknown command "${topic}"`);
        else print(OVERVIEW);
        return 0;
      }
      case "server": {
        const keyEnv = { VPN_KEY: getEnv("VPN_KEY") };
        const options = loadServerOptions(flags, keyEnv);
        const { runServer } = await import("./roles/server.ts");
        return await runServer(options, () => loadServerOptions(flags, keyEnv));
      }
      case "client": {
        if (flags.unblock === true) {
          const { runUnblock } = await import("./roles/unblock.ts");
          return await runUnblock((flags.tun as string | undefined) ?? "vpn0");
        }
        const keyEnv = { VPN_KEY: getEnv("VPN_KEY") };
        const options = loadClientOptions(flags, keyEnv);
        const { runClient } = await import("./roles/client.ts");
        return await runClient(options, () => loadClientOptions(flags, keyEnv));
      }
      case "peer": {
        const { runPeer } = await import("./config/peer_command.ts");
        return await runPeer(flags._words as string[], flags);
      }
      case "status": {
        const tun = flags.tun as string | undefined; // none: every running instance
        if (tun !== undefined && invalidInterfaceName(tun) !== null) {
          throw new ConfigError(`--tun: got ${JSON.stringify(tun)}; allowed: ${INTERFACE_NAME_RULE}`);
        }
        const { runStatus } = await import("./ops/status.ts");
        return await runStatus({
          tun,
          json: flags.json === true,
        });
      }
    }
    return 2;
  } catch (e) {
    if (e instanceof ConfigError || e instanceof KeyError) {
      console.error(`vpn: ${e.message}`);
      return 2;
    }
    console.error(`vpn: ${(e as Error).message ?? String(e)}`);
    if (getEnv("VPN_DEBUG_STACK", true)) console.error((e as Error).stack);
    return 1;
  }
}
