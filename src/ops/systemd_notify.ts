/**
 * systemd readiness (`Type=notify`): READY=1 once the TUN is up and the sockets listen, STOPPING=1 on
 * the way out, each one datagram to `NOTIFY_SOCKET`. Without that variable (not under systemd) nothing
 * is sent.
 */
import { sendUnixDatagram } from "../../ffi/notify_socket.ts";
import { log } from "./log.ts";

/** Tell the service manager `state` (e.g. `READY=1`); a failure is logged, never thrown. */
export function notifySystemd(state: string): void {
  const path = Deno.env.get("NOTIFY_SOCKET");
  if (path === undefined || path === "") return;
  try {
    sendUnixDatagram(path, state);
  } catch (e) {
    log.warn("cannot notify systemd", { state, socket: path, error: (e as Error).message });
  }
}
