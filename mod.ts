/**
 * vpn: a VPN server and client on Deno. Run as `vpn <command>` (see `vpn help`).
 *
 * The public API re-exported here lets other programs embed the pieces: the entry point, config
 * loading, keys, and the I/O-free `vpn/1` protocol (handshake, sessions, replay window, AEAD backends).
 * @module
 */
import { main } from "./src/cli.ts";

export { main } from "./src/cli.ts";
export { ConfigError, loadClientOptions, loadServerOptions } from "./src/config.ts";
export type { ClientOptions, PeerOptions, ServerOptions } from "./src/config.ts";
export { runServer } from "./src/server.ts";
export { runClient } from "./src/client.ts";
export { fetchStatus } from "./src/status.ts";
export type { StatusReport } from "./src/status_report.ts";
export {
  createKeyFile,
  generateKey,
  KeyError,
  keyFromBase64,
  keyToBase64,
  readKeyFile,
} from "./src/key_file.ts";
export { deriveHandshakeKey, deriveSessionKeys } from "./src/keys.ts";
export type { HandshakeKey, SessionKeys } from "./src/keys.ts";
export {
  createInitiation,
  InitiationClock,
  PendingInitiation,
  randomIndex,
  Responder,
} from "./src/handshake.ts";
export type { HandshakeResult, OpenedInitiation } from "./src/handshake.ts";
export { PeerSessions, Session } from "./src/session.ts";
export { ReplayWindow } from "./src/replay_window.ts";
export { AeadUnavailableError, selectAeadBackend } from "./src/aead.ts";
export type { AeadBackend, AeadChoice, PacketAead } from "./src/aead.ts";
export type { AssignedParams, DropReason } from "./src/wire.ts";
export { VERSION } from "./src/version.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
