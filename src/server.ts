import type { ServerOptions } from "./config.ts";
/** Run the server until stopped; resolves to the exit code. */
export function runServer(_o: ServerOptions): Promise<number> {
  return Promise.reject(new Error("server: under construction"));
}
