import type { ClientOptions } from "./config.ts";
/** Run the client until stopped; resolves to the exit code. */
export function runClient(_o: ClientOptions): Promise<number> {
  return Promise.reject(new Error("client: under construction"));
}
