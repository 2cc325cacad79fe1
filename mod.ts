/**
 * vpn: a VPN server and client on Deno. Run as `vpn <command>` (see `vpn help`).
 *
 * The public API re-exported here lets other programs embed the pieces: the entry point, config
 * loading, keys, and the I/O-free `vpn/1` protocol (handshake, sessions, replay window, AEAD backends).
 * @module
 */
import { main } from "./src/cli.ts";

export { main } from "./src/cli.ts";
export { ConfigError, loadClientOptions, loadServerOptions } from "./src/config/config.ts";
export type { ClientOptions, PeerOptions, ServerOptions } from "./src/config/config.ts";
export { runServer } from "./src/roles/server.ts";
export { runClient } from "./src/roles/client.ts";
export { fetchStatus } from "./src/ops/status.ts";
export type { StatusReport } from "./src/ops/status_report.ts";
export {
  createKeyFile,
  generateKey,
  KeyError,
  keyFromBase64,
  keyToBase64,
  readKeyFile,
} from "./src/config/key_file.ts";
export { deriveHandshakeKey, deriveSessionKeys } from "./src/protocol/keys.ts";
export type { HandshakeKey, SessionKeys } from "./src/protocol/keys.ts";
export {
  createInitiation,
  InitiationClock,
  PendingInitiation,
  randomIndex,
  Responder,
} from "./src/protocol/handshake.ts";
export type { HandshakeResult, OpenedInitiation } from "./src/protocol/handshake.ts";
export { PeerSessions, Session } from "./src/protocol/session.ts";
export { ReplayWindow } from "./src/protocol/replay_window.ts";
export { AeadUnavailableError, selectAeadBackend } from "./src/dataplane/aead_select.ts";
export type { AeadChoice } from "./src/dataplane/aead_select.ts";
export type { AeadBackend, PacketAead } from "./src/protocol/aead.ts";
export type { AssignedParams, DropReason } from "./src/protocol/wire.ts";
export { VERSION } from "./src/version.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
