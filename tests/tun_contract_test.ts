/** The TUN contract (src/dataplane/tun.ts) and the real device agree: the same ready bits, the same methods. */
import { assertEquals } from "./assert.ts";
import * as device from "../ffi/tun_device.ts";
import { type PollableTun, READY_OTHER, READY_TUN } from "../src/dataplane/tun.ts";

/** Type-checked only: `deno check` fails if TunDevice stops satisfying the contract. */
export const asContract = (d: device.TunDevice): PollableTun => d;

Deno.test("tun contract: the ready bits of pollWith are the device's", () => {
  assertEquals(READY_TUN, device.READY_TUN);
  assertEquals(READY_OTHER, device.READY_OTHER);
});
