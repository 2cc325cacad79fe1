/** A received data datagram through the steps the data path runs on it, for tests and benches. */
import { DATA_OVERHEAD } from "../src/protocol/constants.ts";
import { DROP_AUTH, DROP_REPLAY, type Session } from "../src/protocol/session.ts";

/**
 * What tunnel.ts does with one data datagram of `length` bytes for session `s` (`#fromUdp`, `#deliver`):
 * the counter pre-check, the tag check in place, then committing the counter. Resolves to the plaintext
 * length (plaintext at `buf[13..]`) or a negative `DROP_*` code.
 */
export async function receiveData(s: Session, buf: Uint8Array, length: number, now: number): Promise<number> {
  const counter = s.checkReceive(buf, now);
  if (counter < 0) return counter;
  let n = s.recvKey.openOne(buf, length);
  if (n instanceof Promise) n = await n;
  if (n < 0) return DROP_AUTH;
  return s.acceptCounter(counter) ? length - DATA_OVERHEAD : DROP_REPLAY;
}
