/** The control socket a running instance serves: each connection gets one JSON status snapshot. */
import { CONTROL_DIR, controlSocketPath } from "./control_path.ts";
import { log } from "./log.ts";
import type { StatusReport } from "./status_report.ts";

/** A listening control socket; `close()` removes it. */
export interface ControlServer {
  readonly path: string;
  close(): void;
}

/** Serve `snapshot()` on `/run/vpn/<tun>.sock`, mode 0600 in a 0700 folder. */
export function serveControl(tun: string, snapshot: () => StatusReport): ControlServer {
  const path = controlSocketPath(tun);
  Deno.mkdirSync(CONTROL_DIR, { recursive: true, mode: 0o700 });
  try {
    // A socket file left by a killed instance would make listen fail; a live one answers a connect.
    Deno.removeSync(path);
  } catch { /* none there */ }
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o600);
  const encoder = new TextEncoder();
  (async () => {
    for await (const conn of listener) {
      try {
        await conn.write(encoder.encode(JSON.stringify(snapshot())));
      } catch (e) {
        log.debug("control client went away", { error: (e as Error).message });
      } finally {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
    }
  })().catch((e) => log.debug("control socket closed", { error: (e as Error).message }));
  return {
    path,
    close() {
      try {
        listener.close();
      } catch { /* already closed */ }
      try {
        Deno.removeSync(path);
      } catch { /* gone */ }
    },
  };
}
