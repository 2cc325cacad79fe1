/**
 * vpn: a VPN server and client on Deno. Run as `vpn <command>` (see `vpn help`).
 *
 * The public API re-exported here lets other programs embed the pieces: config loading,
 * the I/O-free protocol, and the entry point.
 * @module
 */
import { main } from "./src/cli.ts";

export { main } from "./src/cli.ts";
export { ConfigError, loadClientOptions, loadServerOptions } from "./src/config.ts";
export type { ClientOptions, ServerOptions } from "./src/config.ts";
export { createKeyFile, generateKey, keyFromBase64, keyToBase64, readKeyFile } from "./src/key_file.ts";
export { VERSION } from "./src/version.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
